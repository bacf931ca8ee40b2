"""The QoS of every topic the split nodes use, in one place so that publishers and subscribers agree."""

from collections.abc import Callable

from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.subscription import Subscription
from sensor_msgs.msg import CompressedImage, Image

RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}

# image_transport's names: the raw topic, and `compressed` (JPEG or PNG) under it.
CAMERA_TOPICS = {"raw": (Image, "image"), "compressed": (CompressedImage, "image/compressed")}

# Reliable, newest only. A coded bottleneck spans several datagrams and costs the robot an encoder run:
# reliability repairs a lost fragment instead of losing the frame, and KEEP_LAST 1 never queues or
# blocks the head (a newer frame replaces one not yet delivered). It also matches best-effort readers.
BOTTLENECK_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)

# Small per-frame results (detections, stats): ROS's default (reliable, keep last 10) so that RViz,
# `ros2 topic echo` and bags match without settings.
RESULTS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)

# Published once at start-up: transient local, so that a subscriber that comes later still gets it.
LABEL_INFO_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

# The overlay is a camera stream for people to watch: sensor data QoS (config/split.rviz matches it).
OVERLAY_QOS = qos_profile_sensor_data


def camera_qos(reliability: str) -> QoSProfile:
    """Sensor data QoS keeping the newest frame only; best effort matches every camera driver, reliable
    asks a reliable publisher to repair lost fragments (e.g. a bag replayed over a lossy link)."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=RELIABILITY[reliability],
        durability=DurabilityPolicy.VOLATILE,
    )


def subscribe_camera(
    node: Node, transport: str, reliability: str, callback: Callable[[Image | CompressedImage], None]
) -> Subscription:
    """Subscribes `image` (transport `raw`) or `image/compressed` (transport `compressed`)."""
    msg_type, topic = CAMERA_TOPICS[transport]
    return node.create_subscription(msg_type, topic, callback, camera_qos(reliability))
