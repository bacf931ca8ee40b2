"""Boxes and labels drawn onto a camera frame with PIL, for people to check the detector in RViz."""

import zlib
from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageDraw
from vision_msgs.msg import Detection2DArray

# Distinct, saturated colors; a class keeps its color from frame to frame.
PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
)  # fmt: skip


# Detections come over the network: at most this many are drawn, with labels of at most LABEL_CHARS.
MAX_DRAWN = 300
LABEL_CHARS = 40


def draw_detections(
    rgb: np.ndarray, detections: Detection2DArray, class_names: Mapping[str, str]
) -> np.ndarray:
    """A copy of the uint8 RGB frame with each detection's box, class name (its id if unknown) and score.

    Boxes that are not finite are skipped and the rest clipped to just outside the frame, so that no
    coordinate a sender chose can make PIL fail.
    """
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    height, width = rgb.shape[:2]
    for detection in detections.detections[:MAX_DRAWN]:
        box = detection.bbox
        x, y = box.center.position.x, box.center.position.y
        corners = np.array([x - box.size_x / 2, y - box.size_y / 2, x + box.size_x / 2, y + box.size_y / 2])
        if not np.isfinite(corners).all():
            continue
        x1, y1, x2, y2 = np.clip(corners, -1, [width, height, width, height]).tolist()
        corners = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
        label, color = "?", PALETTE[0]
        if detection.results:
            hypothesis = detection.results[0].hypothesis
            name = class_names.get(hypothesis.class_id, hypothesis.class_id)
            label = f"{name[:LABEL_CHARS]} {hypothesis.score:.2f}"
            color = PALETTE[zlib.crc32(hypothesis.class_id[:LABEL_CHARS].encode()) % len(PALETTE)]
        draw.rectangle(corners, outline=color, width=2)
        text_box = draw.textbbox((corners[0] + 3, corners[1] + 2), label)
        draw.rectangle(text_box, fill=color)
        draw.text((corners[0] + 3, corners[1] + 2), label, fill=(0, 0, 0))
    return np.asarray(image)
