"""The soak run: the head and tail nodes (installed executables) under a steady camera, the resident
memory (VmRSS) of both processes sampled as it runs. A leak grows with every frame, so a long run
at a fixed rate shows it as a slope. `python -m sc2_split.benchmarks.soak` runs it for minutes; the
tests that hold the nodes under load run it for less than one.
"""

import re
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import LabelInfo

from sc2_split.ros.image_conversion import rgb_to_image
from sc2_split.ros.topics import LABEL_INFO_QOS, RESULTS_QOS, camera_qos
from sc2_split.testing.diagnostics_reader import DiagnosticsReader
from sc2_split.testing.node_process import node_process
from sc2_split.testing.spin_until import spin_until
from sc2_split_msgs.msg import SplitStats

# Start-up (imports, model loading, first runs, allocator pools) is not a leak: a few frames go
# through before the clock starts, and the first part of the run is left out of the growth figure.
WARMUP_RESULTS = 3
WARMUP_FRACTION = 0.2
# The nodes' counters on /diagnostics this often during a soak (their `summary_period`), in seconds.
COUNTER_PERIOD_S = 1.0
# Most seconds to wait for both nodes to come up, and for the last frames to come through at the end.
START_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 30.0
NODES = ("head", "tail")


def process_rss_mb(pid: int) -> float:
    """Resident memory of a running process now, in MiB (Linux /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def growth_percent(samples: list[tuple[float, float]], warmup_fraction: float = WARMUP_FRACTION) -> float:
    """Growth of (seconds, MiB) samples over the run after warm-up, in percent of the level there.

    From the least-squares slope, not the first and last sample, so one noisy sample (a transient
    allocation, a page reclaimed) can neither fake a leak nor hide one.
    """
    start, end = samples[0][0], samples[-1][0]
    kept = np.array([s for s in samples if s[0] - start >= warmup_fraction * (end - start)])
    if len(kept) < 2:
        raise ValueError(f"{len(samples)} samples leave fewer than 2 after warm-up")
    slope, intercept = np.polyfit(kept[:, 0], kept[:, 1], 1)
    first, last = kept[0, 0], kept[-1, 0]
    return 100.0 * slope * (last - first) / (slope * first + intercept)


@dataclass
class SoakReport:
    seconds: float
    frames_sent: int
    # Frames sent before the clock started, until WARMUP_RESULTS came through (start-up, not measured).
    warmup_frames: int
    # (seconds since the camera started, SplitStats.end_to_end_ms) of every frame with detections.
    end_to_end_ms: list[tuple[float, float]] = field(default_factory=list)
    # Node name -> (seconds since the camera started, VmRSS in MiB) samples.
    rss_mb: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    # Node name -> its counters on /diagnostics after the last frame came through (warm-up included).
    counters: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> str:
        latencies = [ms for _, ms in self.end_to_end_ms]
        lines = [
            f"{self.seconds:.0f} s, {self.frames_sent} frames sent "
            f"({self.frames_sent / self.seconds:.1f} Hz), {len(latencies)} with detections "
            f"(after {self.warmup_frames} warm-up frames)",
        ]
        if latencies:
            p50, p90 = np.percentile(latencies, [50, 90])
            lines.append(f"end-to-end latency: median {p50:.0f} ms, p90 {p90:.0f} ms")
        for name, samples in self.rss_mb.items():
            mb = [m for _, m in samples]
            lines.append(
                f"{name} RSS: {mb[0]:.0f} MiB at start, {mb[-1]:.0f} at the end, {max(mb):.0f} at most; "
                f"growth after warm-up {growth_percent(samples):+.2f}% ({len(samples)} samples)"
            )
        for name, counters in self.counters.items():
            lines.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
        return "\n".join(lines)


class SoakCamera(Node):
    """Publishes a fixed set of frames round and round, and records what comes back."""

    def __init__(self, context: Context, frames: list[np.ndarray]) -> None:
        super().__init__("soak_camera", context=context)
        # Reliable, and the head subscribes so (run_soak sets it): best effort loses most large raw frames
        # (640x480 RGB is 900 KB) on a loaded machine, and a soak is about the nodes, not the link.
        self.publisher = self.create_publisher(Image, "image", camera_qos("reliable"))
        # Converted once: the camera's own cost must not limit the rate it is asked for.
        self.messages = [rgb_to_image(rgb, Header(frame_id="camera_optical_frame")) for rgb in frames]
        self.sent = 0
        self.last_sent = TimeMsg()
        self.results = 0
        self.last_result = TimeMsg()
        self.started = time.monotonic()
        self.end_to_end_ms: list[tuple[float, float]] = []
        self.tail_ready = False
        self.diagnostics = DiagnosticsReader(self)
        self.create_subscription(SplitStats, "stats", self._on_stats, RESULTS_QOS)
        self.create_subscription(LabelInfo, "label_info", self._on_label_info, LABEL_INFO_QOS)

    def send(self) -> None:
        msg = self.messages[self.sent % len(self.messages)]
        msg.header.stamp = self.last_sent = self.get_clock().now().to_msg()
        self.publisher.publish(msg)
        self.sent += 1

    def _on_stats(self, msg: SplitStats) -> None:
        self.results += 1
        self.last_result = msg.header.stamp
        self.end_to_end_ms.append((time.monotonic() - self.started, msg.end_to_end_ms))

    def _on_label_info(self, _: LabelInfo) -> None:
        self.tail_ready = True

    def ready(self) -> bool:
        """The head subscribes to the frames and the tail to the bottlenecks (as this node sees it)."""
        return (
            self.tail_ready
            and self.publisher.get_subscription_count() > 0
            and self.count_subscribers("/bottleneck") > 0
        )

    def drained(self) -> bool:
        """The last frame sent came back (the newest frame is never dropped), and the tail's counters
        include it."""
        return self.last_result == self.last_sent and self.diagnostics.get("/tail", "frames") == self.results


def run_soak(
    head_params: dict[str, object],
    tail_params: dict[str, object],
    frames: list[np.ndarray],
    rate_hz: float,
    seconds: float,
    env: dict[str, str],
    log_dir: Path,
    sample_period_s: float = 2.0,
) -> SoakReport:
    """Starts the tail and the head (installed executables, shipped parameter files plus these
    overrides; the head's camera subscription reliable) with `env`, sends `frames` at `rate_hz` for
    `seconds` and samples both processes.

    This process joins the nodes' DDS domain (env's ROS_DOMAIN_ID); its other discovery settings
    come from its own environment, which should match env's.
    """
    context = Context()
    rclpy.init(
        context=context,
        domain_id=int(env["ROS_DOMAIN_ID"]),
        signal_handler_options=SignalHandlerOptions.NO,
    )
    camera = SoakCamera(context, frames)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(camera)
    # The tail first, so that it hears the head's first bottleneck. Counters every COUNTER_PERIOD_S.
    counters = {"summary_period": COUNTER_PERIOD_S}
    specs = {
        "tail": ("tail_node", "tail.yaml", counters | tail_params),
        "head": ("head_node", "head.yaml", counters | {"qos_reliability": "reliable"} | head_params),
    }
    try:
        with ExitStack() as stack:
            processes = {
                name: stack.enter_context(
                    node_process(executable, params_file, params, env, log_dir / f"{name}.log")
                )
                for name, (executable, params_file, params) in specs.items()
            }

            def wait(done: Callable[[], bool], timeout_s: float) -> bool:
                return spin_until(executor, done, timeout_s, lambda: _check_running(processes, log_dir))

            if not wait(camera.ready, START_TIMEOUT_S):
                raise RuntimeError(f"the head and the tail did not come up; see their logs in {log_dir}")
            # Before the clock: a frame a second until a few came through (loading, planning, pools).
            deadline = time.monotonic() + START_TIMEOUT_S
            while len(camera.end_to_end_ms) < WARMUP_RESULTS:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no detections for the first frames; see the logs in {log_dir}")
                camera.send()
                wait(lambda: False, 1.0)
            camera.end_to_end_ms.clear()
            report = SoakReport(seconds, 0, warmup_frames=camera.sent, rss_mb={name: [] for name in NODES})
            camera.started = start = time.monotonic()
            period = 1.0 / rate_hz
            next_sample = start
            while (now := time.monotonic()) < start + seconds:
                if now >= next_sample:
                    _check_running(processes, log_dir)
                    for name in NODES:
                        report.rss_mb[name].append((now - start, process_rss_mb(processes[name].pid)))
                    next_sample += sample_period_s
                next_frame = start + (camera.sent - report.warmup_frames) * period
                if now >= next_frame:
                    camera.send()
                executor.spin_once(timeout_sec=max(0.0, min(next_sample, next_frame) - time.monotonic()))
            wait(camera.drained, DRAIN_TIMEOUT_S)
            wait(lambda: False, 2 * COUNTER_PERIOD_S)  # for the last counters of both nodes
            report.frames_sent = camera.sent - report.warmup_frames
            report.end_to_end_ms = camera.end_to_end_ms
            report.counters = {name: dict(camera.diagnostics.counters.get(f"/{name}", {})) for name in NODES}
            return report
    finally:
        camera.destroy_node()
        context.try_shutdown()


def _check_running(processes: dict, log_dir: Path) -> None:
    for name, process in processes.items():
        if process.poll() is not None:
            raise RuntimeError(f"the {name} node exited with {process.returncode}; see {log_dir}/{name}.log")
