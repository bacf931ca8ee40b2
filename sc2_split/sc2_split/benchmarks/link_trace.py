"""python -m sc2_split.benchmarks.link_trace: a scripted link trace (by default 50, then 10, then
2 Mbit/s, down for 10 s, then 20 Mbit/s) with the sample sequences played as a camera, and five paths
through it side by side in one run:

- adaptive split: the head on the bundled rate ladder (config/rate_ladder.yaml), one tail per
  student, and the fallback node with the local detector;
- fixed-rate split: the head at the default student, one tail;
- JPEG offloading and H.264 offloading: the robot encodes, the edge decodes and runs the teacher
  (benchmarks/offload_node.py);
- local only: the fallback node with no edge, the local detector on every frame it can take.

The uplink is a relay process (testing/link_relay.py: one bounded queue at the trace's rate, every
message dropped while it is down), since CI cannot make network namespaces; detections come back
unthrottled (a few hundred bytes). The camera, the relay's commands and the recording are in this
process, on one clock; the nodes run as the launch files start them. Each path gets the same frames.
"""

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from ament_index_python.packages import get_package_share_directory
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image as ImageMsg
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from sc2_split.benchmarks.timing import machine
from sc2_split.benchmarks.trace_metrics import FrameRecord, summarize
from sc2_split.benchmarks.trace_report import write_report
from sc2_split.bundled import DEMO_CHECKPOINT
from sc2_split.control.operating_points import load_ladder_file
from sc2_split.data.sequences import sequence
from sc2_split.export.detector_onnx import export_detector
from sc2_split.head_metadata import HeadMetadata
from sc2_split.image_files import encode_image
from sc2_split.offload.video import VideoEncoder, VideoSettings
from sc2_split.ros.detections_conversion import from_detection_array
from sc2_split.ros.image_conversion import rgb_to_image
from sc2_split.ros.topics import BOTTLENECK_QOS, RESULTS_QOS, camera_qos
from sc2_split.testing.diagnostics_reader import DiagnosticsReader
from sc2_split.testing.node_process import isolated_ros_env, node_command, running
from sc2_split.testing.spin_until import spin_until
from sc2_split_msgs.msg import Bottleneck

PATHS = ("adaptive split", "fixed-rate split", "JPEG offloading", "H.264 offloading", "local only")
FRAME_ID = "camera_optical_frame"
SEQUENCE_FRAMES = 40  # frames of each test sequence played, one after the other
DRAIN_S = 3.0  # after the trace: answers still on their way


@dataclass(frozen=True)
class Phase:
    mbit: float  # 0: the link is down
    seconds: float

    @property
    def label(self) -> str:
        return "down" if self.mbit == 0 else f"{self.mbit:g} Mbit/s"


def parse_trace(text: str) -> list[Phase]:
    """`50:10,10:10,2:10,down:10,20:10`: Mbit/s (or `down`) and seconds of each phase."""
    phases = []
    for part in text.split(","):
        rate, _, seconds = part.partition(":")
        phase = Phase(0.0 if rate == "down" else float(rate), float(seconds))
        if phase.mbit < 0 or phase.seconds <= 0:
            raise ValueError(f"trace phase {part!r}: a rate of 0 or more (or down) and positive seconds")
        phases.append(phase)
    return phases


def phase_at(phases: list[Phase], t_s: float) -> Phase:
    """The phase the trace is in `t_s` seconds after it began (the last one after its end)."""
    for phase in phases:
        if t_s < phase.seconds:
            return phase
        t_s -= phase.seconds
    return phases[-1]


class TraceCamera(Node):
    """Plays the frames as the path's robot sends them (raw to the head or the fallback node, or JPEG
    or H.264 onto the uplink), records each frame's detections (the first; later ones counted as
    duplicates) and, on a split path, each bottleneck on the uplink."""

    def __init__(self, path: str, args: argparse.Namespace) -> None:
        super().__init__("trace_camera")
        self.path = path
        self.quality = args.jpeg_quality
        fps = max(1, round(args.rate))
        self.video = VideoSettings(
            "h264", int(args.h264_kbit * 1e3), gop=max(1, round(args.h264_gop_s * fps)), fps=fps
        )
        self.encoder: VideoEncoder | None = None
        self.raw = self.create_publisher(ImageMsg, "image", camera_qos("reliable"))
        self.uplink = self.create_publisher(CompressedImage, "uplink/image/compressed", RESULTS_QOS)
        self.sent: dict[int, tuple[float, int]] = {}  # stamp (ns) -> (monotonic sent, image id)
        self.answers: dict[int, tuple[float, Detection2DArray]] = {}
        self.edge_stamps: set[int] = set()
        self.bottlenecks: dict[int, tuple[int, str]] = {}  # stamp -> (bytes, model id)
        self.offload_bytes: dict[int, int] = {}
        self.duplicates = 0
        self.create_subscription(Detection2DArray, "detections", self.on_detections, RESULTS_QOS)
        self.create_subscription(Detection2DArray, "edge/detections", self.on_edge, RESULTS_QOS)
        self.create_subscription(Bottleneck, "uplink/bottleneck", self.on_bottleneck, BOTTLENECK_QOS)

    def send(self, rgb: np.ndarray, image_id: int) -> None:
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=FRAME_ID)
        stamp = _ns(header)
        self.sent[stamp] = (time.monotonic(), image_id)
        if self.path == "JPEG offloading":
            data = encode_image(rgb, quality=self.quality)
            self.offload_bytes[stamp] = len(data)
            self.uplink.publish(CompressedImage(header=header, format="jpeg", data=data))
        elif self.path == "H.264 offloading":
            if self.encoder is None:
                self.encoder = VideoEncoder(self.video, rgb.shape[1], rgb.shape[0])
            for packet in self.encoder.encode(rgb):  # the zero-latency tune: this frame's packet
                self.offload_bytes[stamp] = len(packet.data)
                self.uplink.publish(CompressedImage(header=header, format="h264", data=packet.data))
        else:
            self.raw.publish(rgb_to_image(rgb, header))

    def on_detections(self, msg: Detection2DArray) -> None:
        stamp = _ns(msg.header)
        if stamp in self.answers:
            self.duplicates += 1
        elif stamp in self.sent:
            self.answers[stamp] = (time.monotonic(), msg)

    def on_edge(self, msg: Detection2DArray) -> None:
        self.edge_stamps.add(_ns(msg.header))

    def on_bottleneck(self, msg: Bottleneck) -> None:
        self.bottlenecks[_ns(msg.header)] = (len(msg.data), msg.model_id)

    def records(self, start: float, points: dict[str, str]) -> list[FrameRecord]:
        """The frames sent since `start` (monotonic), with what came back for them."""
        records = []
        for stamp, (sent, image_id) in sorted(self.sent.items()):
            if sent < start:
                continue  # warm-up
            record = FrameRecord(image_id, sent - start)
            if stamp in self.bottlenecks:
                record.payload_bytes, model_id = self.bottlenecks[stamp]
                record.point = points.get(model_id, model_id)
            elif stamp in self.offload_bytes:
                record.payload_bytes = self.offload_bytes[stamp]
                record.point = self.path.split()[0]
            if stamp in self.answers:
                received, msg = self.answers[stamp]
                record.answered_s = received - start
                record.boxes, record.scores, record.labels = from_detection_array(msg)
                local = self.path == "local only" or (
                    self.path == "adaptive split" and stamp not in self.edge_stamps
                )
                record.source = "local" if local else "edge"
            records.append(record)
        return records


def _ns(header: Header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def path_processes(
    path: str, args: argparse.Namespace, detector: Path
) -> tuple[list[tuple[str, list[str]]], str]:
    """(name, command) of each process of the path, and the topic its relay carries ("" for none)."""
    robot_camera = {"qos_reliability": "reliable"}
    head = {"backend": "onnxruntime", "codec": "entropy", **robot_camera}
    uplink = ("-r", "bottleneck:=uplink/bottleneck")
    fallback = {"model_file_path": detector, "max_rate": args.rate, **robot_camera}
    teacher = [
        sys.executable,
        "-m",
        "sc2_split.benchmarks.offload_node",
        "demo_teacher",
        "demo_teacher",
        "cpu",
    ]
    if path == "adaptive split":
        tails = [
            (
                f"tail-{p.name}",
                node_command(
                    "tail_node", "tail.yaml", {"checkpoint": p.name}, ("-r", "detections:=edge/detections")
                ),
            )
            for p in load_ladder_file(args.ladder)
        ]
        laddered = head | {
            "ladder_file": args.ladder,
            "latency_budget_ms": args.latency_budget_ms,
            "summary_period": 1.0,  # its operating point, read on /diagnostics to end the warm-up
        }
        return [
            *tails,
            ("head", node_command("head_node", "head.yaml", laddered, uplink)),
            (
                "fallback",
                node_command(
                    "fallback_node", "head.yaml", fallback | {"fallback_after_ms": args.fallback_after_ms}
                ),
            ),
        ], "bottleneck"
    if path == "fixed-rate split":
        return [
            ("tail", node_command("tail_node", "tail.yaml", {"checkpoint": DEMO_CHECKPOINT})),
            ("head", node_command("head_node", "head.yaml", head, uplink)),
        ], "bottleneck"
    if path == "JPEG offloading":
        return [("offload", teacher)], "image/compressed"
    if path == "H.264 offloading":
        return [("offload", [*teacher, "h264"])], "image/compressed"
    # Local only: no edge; the fallback starts at once and never stops.
    return [
        ("fallback", node_command("fallback_node", "head.yaml", fallback | {"fallback_after_ms": 1.0}))
    ], ""


@contextmanager
def relay_process(topic: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen | None]:
    """The relay, taking the trace's commands on its stdin; closing it ends the relay."""
    if not topic:
        yield None
        return
    command = [sys.executable, "-m", "sc2_split.testing.link_relay", "--topic", topic]
    with log.open("w") as out:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    try:
        yield process
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def command_relay(relay: subprocess.Popen | None, phase: Phase) -> None:
    if relay is None or relay.stdin is None:
        return
    relay.stdin.write("down\n" if phase.mbit == 0 else f"up\nrate {phase.mbit * 1e6 / 8:.0f}\n")
    relay.stdin.flush()


def run_path(
    path: str, args: argparse.Namespace, frames: list[tuple[np.ndarray, dict]], detector: Path, logs: Path
) -> tuple[list[FrameRecord], dict[str, Any]]:
    """The trace through one path: its frames' records, and what its nodes and relay counted."""
    env = isolated_ros_env()
    os.environ.update(env)  # this process joins the path's DDS domain
    processes, relayed = path_processes(path, args, detector)
    period = 1.0 / args.rate
    slug = path.split()[0].lower().replace(".", "")
    relay_log = logs / f"{slug}-relay.log"
    with ExitStack() as stack:
        relay = stack.enter_context(relay_process(relayed, env, relay_log))
        command_relay(relay, args.phases[0])
        began = time.monotonic()
        children = [stack.enter_context(running(c, env, logs / f"{slug}-{n}.log")) for n, c in processes]
        # Ctrl-C to every node at once when the path is done: they shut down side by side.
        stack.callback(lambda: [c.send_signal(signal.SIGINT) for c in children if c.poll() is None])
        rclpy.init()
        stack.callback(rclpy.try_shutdown)
        camera = TraceCamera(path, args)
        stack.callback(camera.destroy_node)
        diagnostics = DiagnosticsReader(camera)
        executor = SingleThreadedExecutor()
        executor.add_node(camera)
        # Warm-up on the first phase's link, not scored: until the edge answers (the local detector
        # where there is no edge), every process has had time to load its model, and a laddered head
        # is back at its most accurate point (it goes down while the tails load and answer nothing).
        warm, deadline = time.monotonic() + args.warmup, time.monotonic() + args.warmup_timeout

        def steady() -> bool:
            if path != "adaptive split":
                return bool(camera.answers)
            return (
                bool(camera.edge_stamps) and diagnostics.counters.get("/head", {}).get("operating_point") == 0
            )

        while not steady() or time.monotonic() < warm:
            if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                raise RuntimeError(
                    f"{path}: not steady after {args.warmup_timeout:g} s, or a node died; logs in {logs}"
                )
            camera.send(frames[0][0], -1)
            spin_until(executor, lambda: False, period)
        start = time.monotonic()
        print(f"{path}: warm-up {start - began:.0f} s", flush=True)
        current = None
        for i, (rgb, target) in enumerate(frames):
            phase = phase_at(args.phases, i * period)
            if phase is not current:
                command_relay(relay, phase)
                current = phase
            camera.send(rgb, int(target["image_id"]))
            spin_until(executor, lambda: False, start + (i + 1) * period - time.monotonic())
        spin_until(executor, lambda: False, DRAIN_S)
        counters = {node: dict(values) for node, values in diagnostics.counters.items()}
        counters["duplicate_detections"] = {"trace_camera": camera.duplicates}
        records = camera.records(start, model_points(path, args))
    if relayed:
        counters["relay"] = json.loads(
            next(x for x in reversed(relay_log.read_text().splitlines()) if x[:1] == "{")
        )
    return records, counters


def model_points(path: str, args: argparse.Namespace) -> dict[str, str]:
    """Model id -> operating point name, for the heads a split path sends with."""
    if path == "adaptive split":
        points = load_ladder_file(args.ladder)
    elif path == "fixed-rate split":
        points = [p for p in load_ladder_file(args.ladder) if p.name == DEMO_CHECKPOINT]
    else:
        return {}
    return {HeadMetadata.load(p.metadata_file_path).model_id: p.name for p in points}


def trace_frames(count: int) -> list[tuple[np.ndarray, dict]]:
    """`count` frames of the test split's sequences, one after the other, each with its target."""
    sequences = math.ceil(count / SEQUENCE_FRAMES)
    return [f for index in range(sequences) for f in sequence("test", index, SEQUENCE_FRAMES)][:count]


def main(argv: list[str] | None = None) -> int:
    share = Path(get_package_share_directory("sc2_split"))
    p = argparse.ArgumentParser(prog="python -m sc2_split.benchmarks.link_trace", description=__doc__)
    p.add_argument(
        "--trace", default="50:10,10:10,2:10,down:10,20:10", help="MBIT:SECONDS,... (MBIT or down)"
    )
    p.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    p.add_argument("--rate", type=float, default=1.0, help="camera frames per second")
    p.add_argument("--latency-budget-ms", type=float, default=1000.0)
    p.add_argument("--fallback-after-ms", type=float, default=2000.0)
    p.add_argument("--ladder", default=str(share / "config" / "rate_ladder.yaml"))
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--h264-kbit", type=float, default=250.0, help="H.264 constant bitrate, kbit/s")
    p.add_argument(
        "--h264-gop-s", type=float, default=2.0, help="seconds from one H.264 keyframe to the next"
    )
    p.add_argument("--warmup", type=float, default=15.0, help="least seconds of warm-up per path")
    p.add_argument("--warmup-timeout", type=float, default=120.0)
    p.add_argument("--machine", default="", help="the machine's name, beside its description")
    p.add_argument("--out", type=Path, default=Path("out"), help="folder of the table, JSON and plot")
    p.add_argument("--name", default="link_trace", help="their file name")
    args = p.parse_args(argv)
    args.phases = parse_trace(args.trace)
    began = time.monotonic()
    load_at_start = os.getloadavg()  # the machine is shared: the figures are read with its load
    logs = Path(tempfile.mkdtemp(prefix="sc2-trace-"))
    detector = logs / "detector.onnx"
    export_detector("demo_teacher", "demo_teacher", detector)
    total_s = sum(phase.seconds for phase in args.phases)
    frames = trace_frames(round(total_s * args.rate))
    targets = {int(t["image_id"]): t for _, t in frames}
    results = {}
    for path in args.paths:
        records, counters = run_path(path, args, frames, detector, logs)
        summary = summarize(records, total_s, args.latency_budget_ms, targets)
        results[path] = {"summary": summary, "counters": counters, "frames": records}
        print(f"{path}: {json.dumps(summary)}", flush=True)
    about = {
        "machine": " ".join(filter(None, [args.machine, f"({machine()})"])),
        "trace": [{"mbit": ph.mbit, "seconds": ph.seconds} for ph in args.phases],
        "camera_hz": args.rate,
        "latency_budget_ms": args.latency_budget_ms,
        "fallback_after_ms": args.fallback_after_ms,
        "jpeg_quality": args.jpeg_quality,
        "h264_kbit": args.h264_kbit,
        "h264_gop_s": args.h264_gop_s,
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "wall_s": time.monotonic() - began,
    }
    markdown = write_report(results, about, args.out, args.name)
    print(markdown.read_text())
    print(f"wrote {markdown} (.json, .png beside it); node logs in {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
