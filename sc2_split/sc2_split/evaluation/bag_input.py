"""A robot's recording as evaluation input: camera frames from a rosbag2 bag, which has no labels.

The reference is the teacher's own detections on the raw frames (score >= REFERENCE_SCORE), so the
figures say how closely each path reproduces what the detector would see with the whole frame:
agreement mAP, not accuracy. The bag is read with `rosbags` (any rosbag2 bag, SQLite 3 or MCAP, as
`ros2 bag record` or the bag tool writes it) and its frames converted as the head node converts them.
"""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sc2_split.data.synthetic import CLASS_NAMES

CAMERA_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
REFERENCE_SCORE = 0.5


@dataclass
class BagFrames:
    frames: list[np.ndarray]
    stamps: list[int]  # ns, as recorded
    rejected: Counter = field(default_factory=Counter)  # by reason: frames that could not be read


def bag_frames(bag: Path, topic: str, max_frames: int = 0) -> BagFrames:
    """The camera frames of `topic` in recording order, as uint8 RGB; a frame that does not convert
    is counted in `rejected` and left out, and the frames must all have one size (one stream)."""
    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader
    from sensor_msgs.msg import CompressedImage, Image

    from sc2_split.ros.image_conversion import to_rgb

    if not Path(bag).exists():
        raise FileNotFoundError(f"bag not found: {bag}")
    out = BagFrames([], [])
    with AnyReader([Path(bag)]) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            topics = ", ".join(sorted(f"{c.topic} ({c.msgtype})" for c in reader.connections))
            raise ValueError(f"{bag} has no topic {topic}; it has: {topics}")
        kinds = {c.msgtype for c in connections}
        if not kinds <= set(CAMERA_TYPES):
            raise ValueError(
                f"{topic} carries {', '.join(sorted(kinds))}, not one of {', '.join(CAMERA_TYPES)}"
            )
        for connection, stamp, raw in reader.messages(connections=connections):
            msg_type = Image if connection.msgtype == CAMERA_TYPES[0] else CompressedImage
            try:
                rgb = to_rgb(deserialize_message(raw, msg_type))
            except Exception as exc:
                out.rejected[type(exc).__name__] += 1
                continue
            if out.frames and rgb.shape != out.frames[0].shape:
                out.rejected["size_changed"] += 1
                continue
            out.frames.append(rgb)
            out.stamps.append(int(stamp))
            if max_frames and len(out.frames) == max_frames:
                break
    if not out.frames:
        raise ValueError(f"no readable frame on {topic} in {bag} (rejected: {dict(out.rejected)})")
    return out


def reference_ground_truth(outputs: list[dict[str, Any]], height: int, width: int) -> dict[str, Any]:
    """A COCO instances document of the teacher's detections above REFERENCE_SCORE, frame i as image i + 1."""
    images, annotations = [], []
    for i, output in enumerate(outputs):
        images.append({"id": i + 1, "width": width, "height": height, "frame_id": i})
        keep = output["scores"].numpy() >= REFERENCE_SCORE
        for (x1, y1, x2, y2), label in zip(
            output["boxes"].numpy()[keep].tolist(), output["labels"].numpy()[keep], strict=True
        ):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": int(label),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(CLASS_NAMES)]
    return {"images": images, "annotations": annotations, "categories": categories}
