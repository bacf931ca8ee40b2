"""python -m sc2_split.demo: the split detector end to end on the bundled sample frames.

Starts the tail node and the head node as separate processes (the installed executables with the
shipped parameter files, as the launch files do), publishes the sample frames as a camera would,
and prints for each frame the detections, the bytes that crossed the network against JPEG, and the
latency of each stage. Annotated frames are written to a folder.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from PIL import Image
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image as ImageMsg
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, LabelInfo

from sc2_split.data import SAMPLES_DIR
from sc2_split.image_files import encode_image
from sc2_split.ros.image_conversion import rgb_to_image
from sc2_split.ros.overlay import draw_detections
from sc2_split.ros.topics import LABEL_INFO_QOS, RESULTS_QOS, camera_qos
from sc2_split.testing.node_process import isolated_ros_env, node_process
from sc2_split.testing.spin_until import spin_until
from sc2_split_msgs.msg import SplitStats

RESEND_S = 10.0  # s before an unanswered frame is published again
STAGES = ("preprocess_ms", "encode_ms", "codec_ms", "transport_ms", "decode_ms", "tail_ms", "end_to_end_ms")


class Camera(Node):
    """Publishes the sample frames and collects what comes back for each."""

    def __init__(self) -> None:
        super().__init__("demo_camera")
        # Best effort, as camera drivers publish and head.yaml subscribes: the shipped Fast DDS profile
        # (tools/env.sh) carries raw frames between processes without losing them.
        self.publisher = self.create_publisher(ImageMsg, "image", camera_qos("best_effort"))
        self.detections: dict[tuple[int, int], Detection2DArray] = {}
        self.stats: dict[tuple[int, int], SplitStats] = {}
        self.class_names: dict[str, str] = {}
        self.create_subscription(Detection2DArray, "detections", self._on_detections, RESULTS_QOS)
        self.create_subscription(SplitStats, "stats", self._on_stats, RESULTS_QOS)
        self.create_subscription(LabelInfo, "label_info", self._on_labels, LABEL_INFO_QOS)

    def _on_detections(self, msg: Detection2DArray) -> None:
        self.detections[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg

    def _on_stats(self, msg: SplitStats) -> None:
        self.stats[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg

    def _on_labels(self, msg: LabelInfo) -> None:
        self.class_names = {str(c.class_id): c.class_name for c in msg.class_map}


def run(args: argparse.Namespace) -> int:
    frames = sorted(args.frames.glob("*.png"))
    if not frames:
        print(f"no PNG frames in {args.frames}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    env = isolated_ros_env()
    os.environ.update(env)  # this process's camera node joins the nodes' domain
    head_params = {"codec": args.codec}
    with (
        node_process("tail_node", "tail.yaml", {}, env, args.out / "tail.log"),
        node_process("head_node", "head.yaml", head_params, env, args.out / "head.log"),
    ):
        rclpy.init()
        camera = Camera()
        executor = SingleThreadedExecutor()
        executor.add_node(camera)
        try:
            return _exchange(camera, executor, frames, args)
        finally:
            camera.destroy_node()
            rclpy.try_shutdown()


def _exchange(camera: Camera, executor: Executor, frames: list[Path], args: argparse.Namespace) -> int:
    print(f"waiting for the head and the tail (logs in {args.out}) ...")
    if not spin_until(
        executor, lambda: camera.publisher.get_subscription_count() > 0 and camera.class_names, 120
    ):
        print("the nodes did not come up; see head.log and tail.log", file=sys.stderr)
        return 1
    rows = []
    for path in frames:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        stamp = _send(camera, executor, rgb, args.timeout)
        if stamp is None:
            print(f"{path.name}: no detections within {args.timeout:.0f} s", file=sys.stderr)
            return 1
        detections, stats = camera.detections[stamp], camera.stats[stamp]
        Image.fromarray(draw_detections(rgb, detections, camera.class_names)).save(args.out / path.name)
        hypotheses = [d.results[0].hypothesis for d in detections.detections]
        found = ", ".join(f"{camera.class_names.get(h.class_id, '?')} {h.score:.2f}" for h in hypotheses)
        q90 = len(encode_image(rgb, quality=90))
        print(f"{path.name}: {len(detections.detections)} objects [{found}]")
        print(
            f"    {stats.payload_bytes:,} bytes sent ({stats.codec}); JPEG q90 {q90:,} bytes "
            f"({q90 / stats.payload_bytes:.1f}x more); "
            + ", ".join(f"{s.removesuffix('_ms')} {getattr(stats, s):.1f} ms" for s in STAGES)
        )
        rows.append((stats, q90, len(encode_image(rgb, quality=75)), rgb.nbytes))
    _summary(rows, args)
    return 0


def _send(camera: Camera, executor: Executor, rgb: np.ndarray, timeout: float) -> tuple[int, int] | None:
    """Publishes the frame until its detections and stats come back; returns their stamp.

    The head's first bottleneck can leave before the head and the tail have matched (the topic keeps
    no history for late subscribers), so an unanswered frame goes out again, freshly stamped, every
    RESEND_S.
    """
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        header = Header(stamp=camera.get_clock().now().to_msg(), frame_id="camera_optical_frame")
        camera.publisher.publish(rgb_to_image(rgb, header))
        stamp = (header.stamp.sec, header.stamp.nanosec)

        def answered(s: tuple[int, int] = stamp) -> bool:
            return s in camera.detections and s in camera.stats

        if spin_until(executor, answered, min(RESEND_S, left)):
            return stamp
    return None


def _summary(rows: list, args: argparse.Namespace) -> None:
    payload = np.mean([r[0].payload_bytes for r in rows])
    q90, q75, raw = (np.mean([r[i] for r in rows]) for i in (1, 2, 3))
    print(f"\n{len(rows)} frames; model {rows[0][0].model_id}, codec {rows[0][0].codec}")
    sizes = f"bottleneck {payload:,.0f} | JPEG q90 {q90:,.0f} | JPEG q75 {q75:,.0f} | raw {raw:,.0f}"
    print(f"bytes per frame: {sizes}")
    print(
        "median latency per stage (ms): "
        + ", ".join(
            f"{s.removesuffix('_ms')} {np.median([getattr(r[0], s) for r in rows]):.1f}" for s in STAGES
        )
    )
    print(f"annotated frames in {args.out}/")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sc2_split.demo", description=__doc__)
    p.add_argument("--frames", type=Path, default=SAMPLES_DIR, help="folder of PNG frames")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="annotated frames and node logs")
    p.add_argument("--codec", default="entropy", choices=("entropy", "quant8", "fp16"))
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each frame's detections")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
