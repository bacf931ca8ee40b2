"""Two ends of the DDS exchange test, run as separate processes: `talk N` and `listen N TIMEOUT_S`.

Each prints one JSON line per message it sent or received so that the test can compare them.
"""

import hashlib
import json
import sys
import time

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy

from sc2_split_msgs.msg import Bottleneck

QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


def summary(msg: Bottleneck) -> str:
    return json.dumps(
        {
            "stamp": msg.header.stamp.sec,
            "frame_id": msg.header.frame_id,
            "model_id": msg.model_id,
            "shape": list(msg.shape),
            "sha256": hashlib.sha256(bytes(msg.data)).hexdigest(),
            "size": len(msg.data),
        }
    )


def talk(count: int) -> None:
    node = rclpy.create_node("bottleneck_talker")
    pub = node.create_publisher(Bottleneck, "bottleneck", QOS)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    for i in range(count):
        msg = Bottleneck()
        msg.header.stamp.sec = i
        msg.header.frame_id = "camera_optical_frame"
        msg.model_id = "test-model"
        msg.shape = [1, 24, 8, 10 + i]
        # Sizes from empty to beyond one UDP datagram, so that fragmentation is exercised.
        msg.data = bytes(hashlib.sha256(str(i).encode()).digest() * (i * 400))
        pub.publish(msg)
        print(summary(msg), flush=True)
        time.sleep(0.02)
    # Keep the writer alive until the reader acknowledged everything (reliable QoS).
    pub.wait_for_all_acked(rclpy.duration.Duration(seconds=10))
    node.destroy_node()


def listen(count: int, timeout_s: float) -> None:
    node = rclpy.create_node("bottleneck_listener")
    received: list[Bottleneck] = []
    node.create_subscription(Bottleneck, "bottleneck", received.append, QOS)
    deadline = time.monotonic() + timeout_s
    while len(received) < count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    for msg in received:
        print(summary(msg), flush=True)
    node.destroy_node()


if __name__ == "__main__":
    rclpy.init()
    try:
        if sys.argv[1] == "talk":
            talk(int(sys.argv[2]))
        else:
            listen(int(sys.argv[2]), float(sys.argv[3]))
    finally:
        rclpy.try_shutdown()
