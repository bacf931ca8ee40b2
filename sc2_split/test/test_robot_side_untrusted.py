"""What the robot's nodes read from others, made safe: camera headers and encodings for the head,
detections and label info from the network for the overlay."""

import math

import numpy as np
import pytest
from sc2_split.codecs.payload import PayloadError
from sc2_split.ros.bottleneck_conversion import MAX_FRAME_ID_CHARS, check_frame_id
from sc2_split.ros.image_conversion import compressed_to_rgb, image_to_rgb
from sc2_split.ros.overlay import MAX_DRAWN, draw_detections
from sc2_split.untrusted import MAX_LOG_LINE
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose


def test_a_frame_id_too_long_to_echo_is_refused_with_a_short_message() -> None:
    check_frame_id("c" * MAX_FRAME_ID_CHARS)
    with pytest.raises(PayloadError, match="longer than") as caught:
        check_frame_id("c" * 1_000_000)
    assert caught.value.reason == "header" and len(str(caught.value)) < MAX_LOG_LINE


def test_unknown_encodings_and_formats_are_named_in_short_messages() -> None:
    image = Image(height=2, width=2, step=6, encoding="\x1b[2J" * 100_000, data=bytes(12))
    with pytest.raises(ValueError) as caught:
        image_to_rgb(image)
    assert len(str(caught.value)) < MAX_LOG_LINE and "\x1b" not in str(caught.value)
    with pytest.raises(ValueError) as caught:
        compressed_to_rgb(CompressedImage(format="jpeg" * 100_000, data=b"not an image"))
    assert len(str(caught.value)) < MAX_LOG_LINE


def _detection(x: float, y: float, w: float, h: float, class_id: str) -> Detection2D:
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = class_id, 0.9
    box = BoundingBox2D(size_x=w, size_y=h)
    box.center.position.x, box.center.position.y = x, y
    return Detection2D(bbox=box, results=[hypothesis])


def test_the_overlay_draws_any_detections_a_sender_could_forge() -> None:
    rgb = np.zeros((48, 64, 3), dtype=np.uint8)
    hostile = [
        _detection(math.nan, 10, 5, 5, "1"),
        _detection(10, 10, math.inf, 5, "1"),
        _detection(-1e300, 1e300, 1e308, -1e308, "2"),
        _detection(20, 20, -10, -10, "x" * 1_000_000),  # negative size, and a huge label
        _detection(30, 30, 10, 10, "3"),
    ]
    many = [_detection(5, 5, 4, 4, "1")] * (MAX_DRAWN * 10)
    names = {"3": "n" * 1_000_000}
    drawn = draw_detections(rgb, Detection2DArray(detections=hostile + many), names)
    assert drawn.shape == rgb.shape and drawn.any()
    not_finite = Detection2DArray(detections=hostile[:2])
    assert (draw_detections(rgb, not_finite, names) == rgb).all(), "a box without a place was drawn"
