"""The robot-side end of the end-to-end benchmark, run as its own process (inside the robot's network
namespace when a link is emulated): publishes frames like a camera at a fixed rate, raw for the head
or as JPEG for full offloading, and times each frame's detections coming back on the same clock.

Prints one JSON object: latencies in ms of every answered frame, frames sent, answered, seconds."""

import argparse
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image as ImageMsg
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from sc2_split.data import sample_frames
from sc2_split.image_files import encode_image
from sc2_split.ros.image_conversion import rgb_to_image
from sc2_split.ros.topics import RESULTS_QOS, camera_qos
from sc2_split.testing.spin_until import spin_until


class Probe(Node):
    def __init__(self, mode: str, quality: int) -> None:
        super().__init__("e2e_probe")
        self.mode, self.quality = mode, quality
        message, topic = (ImageMsg, "image") if mode == "split" else (CompressedImage, "image/compressed")
        # Reliable: a raw 640x480 frame is 900 KB in many DDS fragments, and one lost fragment would
        # lose the frame; depth 1 still never queues.
        self.publisher = self.create_publisher(message, topic, camera_qos("reliable"))
        self.sent: dict[tuple[int, int], float] = {}
        self.latencies_ms: list[float] = []
        self.create_subscription(Detection2DArray, "detections", self.on_detections, RESULTS_QOS)

    def send(self, rgb: np.ndarray) -> None:
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id="camera_optical_frame")
        if self.mode == "split":
            msg = rgb_to_image(rgb, header)
        else:  # the robot's share of full offloading: JPEG encoding
            msg = CompressedImage(header=header, format="jpeg", data=encode_image(rgb, quality=self.quality))
        self.sent[(header.stamp.sec, header.stamp.nanosec)] = time.monotonic()
        self.publisher.publish(msg)

    def on_detections(self, msg: Detection2DArray) -> None:
        sent = self.sent.pop((msg.header.stamp.sec, msg.header.stamp.nanosec), None)
        if sent is not None:
            self.latencies_ms.append(1e3 * (time.monotonic() - sent))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=("split", "offload"), required=True)
    p.add_argument("--rate", type=float, default=5.0)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=30.0, help="most seconds to wait for the first answer")
    p.add_argument("--quality", type=int, default=90)
    args = p.parse_args()
    rclpy.init()
    probe = Probe(args.mode, args.quality)
    executor = SingleThreadedExecutor()
    executor.add_node(probe)
    frames = sample_frames(480, 640, 8)
    # Warm-up: frames until the first answer (discovery, model loading), not counted.
    deadline = time.monotonic() + args.warmup
    while not probe.latencies_ms and time.monotonic() < deadline:
        probe.send(frames[0])
        spin_until(executor, lambda: probe.latencies_ms, 1.0)
    probe.latencies_ms.clear()
    probe.sent.clear()
    sent, start, period = 0, time.monotonic(), 1.0 / args.rate
    while time.monotonic() - start < args.seconds:
        probe.send(frames[sent % len(frames)])
        sent += 1
        spin_until(executor, lambda: False, start + sent * period - time.monotonic())
    spin_until(executor, lambda: not probe.sent, 3.0)  # answers still on their way
    print(
        json.dumps(
            {
                "latencies_ms": probe.latencies_ms,
                "sent": sent,
                "answered": len(probe.latencies_ms),
                "seconds": args.seconds,
            }
        )
    )
    probe.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
