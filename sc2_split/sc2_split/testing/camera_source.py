"""A camera driver stand-in in its own process: `python -m sc2_split.testing.camera_source`.

Publishes the bundled sample frames, resized, as rgb8 `image` (or JPEG `image/compressed`) at a fixed
rate with the QoS camera drivers use (sensor data: best effort, keep last), starting once as many
readers as asked for have matched, and prints one JSON line: how many frames it sent and their
stamps. A driver in another process is the case that matters: within one process a frame never
crosses DDS transports, so a frame too large for them is never lost.
"""

import argparse
import json
import sys
import time

import rclpy
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header

from sc2_split.data import sample_frames
from sc2_split.image_files import encode_image
from sc2_split.ros.image_conversion import rgb_to_image
from sc2_split.ros.topics import CAMERA_TOPICS, camera_qos

FRAME_ID = "camera_optical_frame"
JPEG_QUALITY = 90
SAMPLE_COUNT = 8


def publish_frames(args: argparse.Namespace) -> dict[str, object]:
    node = Node("camera")
    msg_type, topic = CAMERA_TOPICS[args.transport]
    publisher = node.create_publisher(msg_type, topic, camera_qos(args.reliability))
    deadline = time.monotonic() + args.match_timeout
    while publisher.get_subscription_count() < args.subscribers:
        if time.monotonic() > deadline:
            raise SystemExit(f"camera_source: {publisher.get_subscription_count()} readers matched")
        rclpy.spin_once(node, timeout_sec=0.05)
    # The writer can see a reader match before that reader knows the writer, and a frame sent in
    # between is lost on any DDS: that is start-up, not the steady state measured here.
    time.sleep(args.warmup)
    # The bundled sample frames: scenes the demo model detects objects in.
    frames = sample_frames(args.height, args.width, SAMPLE_COUNT)
    jpegs = [encode_image(f, quality=JPEG_QUALITY) for f in frames] if args.transport == "compressed" else []
    stamps = []
    start = time.monotonic()
    for i in range(args.frames):
        time.sleep(max(0.0, start + i / args.rate - time.monotonic()))
        header = Header(stamp=node.get_clock().now().to_msg(), frame_id=FRAME_ID)
        if jpegs:
            publisher.publish(CompressedImage(header=header, format="jpeg", data=jpegs[i % len(jpegs)]))
        else:
            publisher.publish(rgb_to_image(frames[i % len(frames)], header))
        stamps.append(header.stamp.sec * 10**9 + header.stamp.nanosec)
    elapsed = time.monotonic() - start
    node.destroy_node()
    return {"sent": len(stamps), "rate_hz": (len(stamps) - 1) / elapsed, "stamps_ns": stamps}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sc2_split.testing.camera_source", description=__doc__)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--rate", type=float, default=10.0, help="frames per second")
    p.add_argument("--frames", type=int, default=50, help="frames to publish, then exit")
    p.add_argument("--transport", choices=sorted(CAMERA_TOPICS), default="raw")
    p.add_argument("--reliability", choices=("best_effort", "reliable"), default="best_effort")
    p.add_argument("--subscribers", type=int, default=1, help="readers to wait for before the first frame")
    p.add_argument("--match-timeout", type=float, default=60.0, help="seconds to wait for them")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds between the match and the first frame")
    args = p.parse_args(argv)
    rclpy.init()
    try:
        print(json.dumps(publish_frames(args)), flush=True)
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
