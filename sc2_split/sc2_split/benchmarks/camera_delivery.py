"""python -m sc2_split.benchmarks.camera_delivery: how many raw camera frames reach the head across
processes, and how long from the camera's stamp to the head's bottleneck, per resolution, camera QoS
(best effort as camera drivers publish, or reliable), transport (raw rgb8 or JPEG on
image/compressed), with the shipped Fast DDS profile and with Fast DDS's defaults, side by side in
one run.

A camera process (sc2_split.testing.camera_source) publishes at a fixed rate into a head node
process (the bundled head, shipped head.yaml); frames that reached the head are counted from its
Bottleneck messages (sequence + 1 + head_dropped_frames), so frames the encoder skipped for newer
ones are not losses. Latency: the bottleneck's `sent` time minus the frame's stamp (one clock),
over the frames the head encoded. Prints a table, writes JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import rclpy
from rclpy.node import Node

from sc2_split.ros.dds_profile import PROFILE_VARIABLES, camera_profile_env
from sc2_split.ros.topics import BOTTLENECK_QOS
from sc2_split.testing.node_process import isolated_ros_env, node_process
from sc2_split_msgs.msg import Bottleneck

RESOLUTIONS = ((480, 640), (720, 1280), (1080, 1920))
SETTLE_S = 2.0  # s without a new bottleneck after the camera's last frame


@dataclass
class Row:
    profile: str
    qos: str
    transport: str
    width: int
    height: int
    sent: int
    reached_head: int
    encoded: int
    latency_p50_ms: float | None  # None: the head encoded none of these frames
    latency_p90_ms: float | None
    # Of the latency, the part before the head's preprocessing started: delivery, and waiting for the
    # encoder to finish the frame before.
    before_head_p50_ms: float | None

    @property
    def delivery(self) -> float:
        return self.reached_head / self.sent


def stamp_ns(t: object) -> int:
    return t.sec * 10**9 + t.nanosec


def frames_reached(bottlenecks: list[Bottleneck]) -> int:
    """Frames the head received since it started (its counters ride on every bottleneck)."""
    if not bottlenecks:
        return 0
    last = max(bottlenecks, key=lambda b: b.sequence)
    return last.sequence + 1 + last.head_dropped_frames


class Recorder(Node):
    def __init__(self) -> None:
        super().__init__("camera_delivery")
        self.bottlenecks: list[Bottleneck] = []
        self.create_subscription(Bottleneck, "bottleneck", self.bottlenecks.append, BOTTLENECK_QOS)

    def spin_while(self, busy: object, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while busy() and time.monotonic() < deadline:
            rclpy.spin_once(self, timeout_sec=0.05)

    def settle(self) -> None:
        count = -1
        while count != len(self.bottlenecks):
            count = len(self.bottlenecks)
            self.spin_while(lambda: True, SETTLE_S)


def environment(profile: str, base: dict[str, str]) -> dict[str, str]:
    """`base` with the shipped profile, or with none at all (Fast DDS's defaults)."""
    env = {k: v for k, v in base.items() if k not in PROFILE_VARIABLES}
    return {**env, **camera_profile_env(env)} if profile == "shipped" else env


def measure_head(recorder: Recorder, env: dict[str, str], profile: str, qos: str, transport: str,
                 args: argparse.Namespace) -> list[Row]:  # fmt: skip
    """One head process with this QoS and transport, and a camera process per resolution."""
    rows = []
    overrides = {"qos_reliability": qos, "image_transport": transport}
    log = args.out / f"head_{profile}_{qos}_{transport}.log"
    recorder.bottlenecks.clear()  # a new head counts from zero
    with node_process("head_node", "head.yaml", overrides, env, log):
        recorder.spin_while(lambda: recorder.count_publishers("/bottleneck") < 1, 60)
        for height, width in RESOLUTIONS:
            before = frames_reached(recorder.bottlenecks)
            command = [sys.executable, "-m", "sc2_split.testing.camera_source", "--height", str(height),
                       "--width", str(width), "--rate", str(args.rate), "--frames", str(args.frames),
                       "--transport", transport, "--reliability", qos]  # fmt: skip
            camera = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
            recorder.spin_while(lambda c=camera: c.poll() is None, 120)
            sent = json.loads(camera.communicate()[0])
            recorder.settle()
            stamps = set(sent["stamps_ns"])
            ours = [b for b in recorder.bottlenecks if stamp_ns(b.header.stamp) in stamps]
            reached = frames_reached(recorder.bottlenecks) - before
            rows.append(Row(profile, qos, transport, width, height, sent["sent"], reached, len(ours),
                            *latency_figures(ours)))  # fmt: skip
            print(format_row(rows[-1]), flush=True)
    return rows


def latency_figures(bottlenecks: list[Bottleneck]) -> tuple[float | None, float | None, float | None]:
    """Camera stamp to bottleneck sent, p50 and p90; and the p50 of that less the head's own stages."""
    if not bottlenecks:
        return None, None, None
    latency = np.array([(stamp_ns(b.sent) - stamp_ns(b.header.stamp)) / 1e6 for b in bottlenecks])
    head_ms = np.array([b.preprocess_ms + b.encode_ms + b.codec_ms for b in bottlenecks])
    p50, p90 = np.percentile(latency, [50, 90])
    return float(p50), float(p90), float(np.median(latency - head_ms))


def format_row(r: Row) -> str:
    figures = (r.latency_p50_ms, r.latency_p90_ms, r.before_head_p50_ms)
    p50, p90, before_head = (f"{v:.0f} ms" if v is not None else "-" for v in figures)
    return (
        f"| {r.width}x{r.height} | {r.qos} | {r.transport} | {r.profile} | {r.reached_head}/{r.sent} "
        f"({r.delivery:.0%}) | {p50} | {p90} | {before_head} |"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sc2_split.benchmarks.camera_delivery", description=__doc__)
    p.add_argument("--frames", type=int, default=40, help="frames per resolution and setting")
    p.add_argument("--rate", type=float, default=10.0, help="camera frames per second")
    p.add_argument("--machine", default="this machine", help="named in the JSON beside every figure")
    p.add_argument("--out", type=Path, default=Path("out/camera_delivery"), help="node logs")
    p.add_argument("--json", type=Path, default=Path("out/camera_delivery.json"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    base = isolated_ros_env()
    # This process only reads the head's small bottlenecks; its own participant keeps the profile.
    os.environ.update(environment("shipped", base))
    rclpy.init()
    recorder = Recorder()
    rows: list[Row] = []
    print("| frames | camera QoS | transport | Fast DDS profile | reached the head | latency p50 | p90 "
          "| p50 before the head's preprocessing |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    with ExitStack() as stack:
        stack.callback(rclpy.try_shutdown)
        stack.callback(recorder.destroy_node)
        # Each setting with and without the profile back to back, so that both see the same machine.
        for qos in ("best_effort", "reliable"):
            for transport in ("raw", "compressed"):
                for profile in ("shipped", "defaults"):
                    rows += measure_head(recorder, environment(profile, base), profile, qos, transport, args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    record = {"machine": args.machine, "rate_hz": args.rate, "frames": args.frames,
              "rows": [{**asdict(r), "delivery": r.delivery} for r in rows]}  # fmt: skip
    args.json.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
