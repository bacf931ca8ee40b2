"""What the link-trace benchmark reports of one path, from the frames the camera sent and the
detections that came back: pure functions over records, so that they are tested without ROS.

Every figure is over the frames sent during the trace: a frame never answered counts against the
share within budget and the mAP (its objects are missed), and the longest gap runs from the trace's
start to its end, so a path silent at either end is not spared."""

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sc2_split.data.synthetic import coco_ground_truth
from sc2_split.evaluation.coco_map import coco_detections, coco_map


@dataclass
class FrameRecord:
    """One camera frame of the trace, on the robot's clock (seconds since the trace began)."""

    image_id: int  # its target's, in the sequences' ground truth
    sent_s: float
    payload_bytes: int | None = None  # what went on the link for it, where the recorder saw it
    point: str = ""  # what coded it: the operating point, or the offloading codec
    answered_s: float | None = None  # its first detections' arrival
    source: str = ""  # "edge" or "local", once answered
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def latency_ms(self) -> float | None:
        return None if self.answered_s is None else 1e3 * (self.answered_s - self.sent_s)


def longest_gap_s(arrivals: list[float], start_s: float, end_s: float) -> float:
    """The longest time in [start_s, end_s] without a detection arriving (the whole span if none did)."""
    times = sorted(t for t in arrivals if start_s <= t <= end_s)
    edges = [start_s, *times, end_s]
    return max(b - a for a, b in itertools.pairwise(edges))


def trace_map(frames: list[FrameRecord], targets: dict[int, dict[str, Any]]) -> float:
    """COCO mAP@[.5:.95] of the detections over every frame sent (`targets` by image id)."""
    results = []
    for f in frames:
        output = {"boxes": torch.from_numpy(f.boxes), "scores": torch.from_numpy(f.scores)}
        results += coco_detections(f.image_id, output | {"labels": torch.from_numpy(f.labels)})
    return coco_map(coco_ground_truth([targets[f.image_id] for f in frames]), results)["map"]


def summarize(
    frames: list[FrameRecord], end_s: float, budget_ms: float, targets: dict[int, dict[str, Any]]
) -> dict[str, float]:
    """The benchmark's figures of one path over a trace of `end_s` seconds."""
    latencies = np.array([f.latency_ms for f in frames if f.latency_ms is not None])
    answered = len(latencies)

    def percentile(q: float) -> float:
        return float(np.percentile(latencies, q)) if answered else float("nan")

    return {
        "sent": len(frames),
        "answered": answered,
        "detections_per_s": answered / end_s,
        "p50_ms": percentile(50),
        "p99_ms": percentile(99),
        "within_budget": float((latencies <= budget_ms).sum() / len(frames)) if frames else 0.0,
        "longest_gap_s": longest_gap_s(
            [f.answered_s for f in frames if f.answered_s is not None], 0.0, end_s
        ),
        "local_share": sum(f.source == "local" for f in frames) / max(answered, 1),
        "map": trace_map(frames, targets),
    }
