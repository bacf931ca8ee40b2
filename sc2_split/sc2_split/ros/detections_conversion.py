"""The tail's Detections as a vision_msgs/Detection2DArray, shared by the tail node and the offline tail
of `bag_tool`, so that a bag decoded offline publishes exactly what the live tail would have."""

import numpy as np
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesis, ObjectHypothesisWithPose

from sc2_split.frames import Detections


def best_detections(detections: Detections, score_threshold: float, max_detections: int) -> np.ndarray:
    """Indexes of the best `max_detections` scoring at least `score_threshold`, best first."""
    keep = np.flatnonzero(detections.scores >= score_threshold)
    return keep[np.argsort(-detections.scores[keep], kind="stable")][:max_detections]


def to_detection_array(
    header: Header, detections: Detections, score_threshold: float, max_detections: int
) -> Detection2DArray:
    """The best detections as boxes (center and size) in source pixels, with the label index as class_id
    (a string, as vision_msgs 4.x asks)."""
    out = Detection2DArray(header=header)
    for i in best_detections(detections, score_threshold, max_detections):
        x1, y1, x2, y2 = (float(v) for v in detections.boxes[i])
        d = Detection2D(header=header)
        d.bbox.center.position.x = (x1 + x2) / 2
        d.bbox.center.position.y = (y1 + y2) / 2
        d.bbox.size_x = x2 - x1
        d.bbox.size_y = y2 - y1
        hypothesis = ObjectHypothesis(
            class_id=str(int(detections.labels[i])), score=float(detections.scores[i])
        )
        d.results = [ObjectHypothesisWithPose(hypothesis=hypothesis)]
        out.detections.append(d)
    return out


def from_detection_array(msg: Detection2DArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """to_detection_array undone, for whoever scores what a node published: boxes (N, 4) x1y1x2y2 in
    source pixels, scores (N,) and label indexes (N,), each detection's first hypothesis."""
    boxes, scores, labels = [], [], []
    for d in msg.detections:
        if not d.results:
            continue
        cx, cy = d.bbox.center.position.x, d.bbox.center.position.y
        boxes.append(
            (cx - d.bbox.size_x / 2, cy - d.bbox.size_y / 2, cx + d.bbox.size_x / 2, cy + d.bbox.size_y / 2)
        )
        scores.append(d.results[0].hypothesis.score)
        labels.append(int(d.results[0].hypothesis.class_id))
    return (
        np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        np.asarray(scores, dtype=np.float32),
        np.asarray(labels, dtype=np.int64),
    )
