"""The rates the head can send at: one bundled student each, with the payload size and accuracy
measured per student on the held-out synthetic split (docs/rate_accuracy.md)."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from sc2_split.bundled import bundled_head


@dataclass(frozen=True)
class OperatingPoint:
    """One rate: a name, its measured bytes per frame and mAP, and for the head node the exported head
    (its head.json; the model id in it names the student) and the codec that send at this rate."""

    name: str
    bytes_per_frame: float
    accuracy: float
    metadata_file_path: str = ""
    codec: str = "entropy"


def ladder(points: Iterable[OperatingPoint]) -> tuple[OperatingPoint, ...]:
    """The points worth switching between, most accurate first, each smaller than the one before.

    A point that another beats on both size and accuracy is never the best choice at any bandwidth,
    so it is left out: going down the ladder always saves bytes, going up always gains accuracy.
    """
    kept: list[OperatingPoint] = []
    for point in sorted(points, key=lambda p: (-p.accuracy, p.bytes_per_frame)):
        if not kept or point.bytes_per_frame < kept[-1].bytes_per_frame:
            kept.append(point)
    if not kept:
        raise ValueError("a rate ladder needs at least one operating point")
    return tuple(kept)


def from_rate_accuracy(
    rows: Sequence[Mapping[str, object]], students: Iterable[str], payload: str = "entropy"
) -> tuple[OperatingPoint, ...]:
    """The ladder of `students` from docs/rate_accuracy.json's rows (method, payload, bytes_per_frame,
    map); a student without a row is an error, not a silent gap in the ladder."""
    measured = {row["method"]: row for row in rows if row["payload"] == payload}
    points = []
    for student in students:
        row = measured.get(student)
        if row is None:
            raise ValueError(f"no {payload} measurement of {student!r} in the rate-accuracy rows")
        points.append(OperatingPoint(student, float(row["bytes_per_frame"]), float(row["map"])))
    return ladder(points)


def load_ladder_file(path: str | Path) -> tuple[OperatingPoint, ...]:
    """The ladder of a YAML file: `operating_points`, a list of name, metadata_file_path (relative
    to the file, or absolute; left out: the bundled head of the student `name`, as the head node's
    empty metadata_file_path is the bundled head), codec, bytes_per_frame and accuracy, the last two
    as measured."""
    path = Path(path)
    try:
        entries = yaml.safe_load(path.read_text())["operating_points"]
        points = [
            OperatingPoint(
                str(e["name"]),
                float(e["bytes_per_frame"]),
                float(e["accuracy"]),
                str(path.parent / e["metadata_file_path"])
                if e.get("metadata_file_path")
                else str(bundled_head(str(e["name"]))),
                str(e.get("codec", "entropy")),
            )
            for e in entries
        ]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"cannot read the rate ladder {path}: {exc!r}") from exc
    return ladder(points)
