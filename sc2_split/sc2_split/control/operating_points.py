"""The rates the head can send at: one bundled student each, with the payload size and accuracy
measured per student on the held-out synthetic split (docs/rate_accuracy.md)."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class OperatingPoint:
    """One rate: a head (its model id names the student), its measured bytes per frame, its mAP."""

    name: str
    bytes_per_frame: float
    accuracy: float


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
