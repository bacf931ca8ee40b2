"""Tail node (edge): compressed bottleneck -> vision_msgs detections in the source image's pixels.

Detections carry the label index as class_id (a string, as vision_msgs 4.x asks) and the class names
are published once on `label_info`, latched. Every payload is untrusted: one that does not fit this
tail's model is rejected with one log line naming the reason, counted, and the node goes on.

Two stages, so that the CPU decodes the next bottleneck while the GPU runs this one: the subscription
callback checks and entropy-decodes, then hands the latent to the network's thread. That thread takes
the newest latent only; one that a newer latent replaced while the network was busy is dropped and
counted, so a slow network costs dropped frames, never a queue.

Each bottleneck is checked before it changes any state: a rejected one moves only the rejection
counters. Sequence numbers count per sender (DDS publisher), stamps that no clock skew explains are
left out of the latency statistics, and untrusted strings reach the log cut short
(docs/untrusted_input.md).
"""

import math
import threading
import time
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from rclpy.node import Node
from rclpy.time import Time
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, LabelInfo, VisionClass

from sc2_split.bundled import BUNDLED_HEAD, DEMO_CHECKPOINT
from sc2_split.codecs.payload import PayloadError
from sc2_split.frames import Detections
from sc2_split.geometry import ImageGeometry
from sc2_split.head_metadata import HeadMetadata
from sc2_split.ros.bottleneck_conversion import from_bottleneck
from sc2_split.ros.detections_conversion import to_detection_array
from sc2_split.ros.diagnostics import CounterDiagnostics
from sc2_split.ros.latency_window import LatencyWindow
from sc2_split.ros.newest_wins import NewestWinsWorker
from sc2_split.ros.parameters import SUMMARY_PERIOD, Param, declare_parameters
from sc2_split.ros.senders import subscribe_with_sender
from sc2_split.ros.spin import spin_node
from sc2_split.ros.stamps import ms_since
from sc2_split.ros.topics import BOTTLENECK_QOS, LABEL_INFO_QOS, RESULTS_QOS
from sc2_split.sequence_gaps import SequenceGaps
from sc2_split.untrusted import bounded_line, plausible_ms, saturating_add
from sc2_split_msgs.msg import Bottleneck, SplitStats

if TYPE_CHECKING:
    from sc2_split.ros.served_robots import ServedRobots

# A sender with the wrong model would otherwise log at its frame rate: each reason at most this often.
REJECT_LOG_PERIOD_S = 5.0

PARAMETERS = {
    "model_config": Param(
        "demo_fp",
        "detector config: a YAML path or a bundled name (demo_fp, demo_bq8, sc2_resnet50_fp, ...)",
    ),
    "checkpoint": Param(
        DEMO_CHECKPOINT,
        f"weights the head was exported from: a .pt path or a bundled name ({DEMO_CHECKPOINT}, ...); "
        "empty: random weights, for tests only",
    ),
    "model_name": Param("", "name in the model id; empty: the config's file name, as the export tool does"),
    "device": Param("cpu", "torch device of the tail: cpu, cuda, cuda:1"),
    "decode_workers": Param(
        0,
        "processes that entropy-decode each version 1 bottleneck (per-channel streams), a group of "
        "channels each; 0: in this node's process. Version 2 (rANS lanes, the heads' default) ignores "
        "it: decoded on the GPU on a CUDA device, else on all cores here",
        bounds=(0, 64),
    ),
    "score_threshold": Param(0.5, "lowest score of a published detection", bounds=(0.0, 1.0)),
    "max_detections": Param(100, "most detections published per frame, best scores first", bounds=(1, 10000)),
    "server_url": Param(
        "",
        "host:port of a Triton server's gRPC endpoint serving this model (ros2 run sc2_split tail_server); "
        "empty: the tail runs in this process",
    ),
    "metadata_file_path": Param(
        "",
        "with server_url: the robots' head.json (python -m sc2_split.export), whose class names "
        "label_info carries; empty: the bundled head's",
    ),
    "robots": Param(
        [""],
        "with server_url: robot namespaces to serve, relative to this node's (robot1, robot2, ...); each "
        "gets <ns>/bottleneck in and <ns>/detections, <ns>/stats, <ns>/label_info out; '': its own",
    ),
    "discover_robots": Param(
        False,
        "with server_url: also serve each namespace under this node's found publishing <ns>/bottleneck "
        "(searched every second), besides those of robots",
    ),
    "max_robots": Param(
        64, "with server_url: most robots served, listed and discovered; more are logged", bounds=(1, 4096)
    ),
    "max_in_flight": Param(4, "with server_url: most requests out at once per robot", bounds=(1, 1024)),
    "request_timeout": Param(
        2.0, "with server_url: seconds before an unanswered request counts as lost", bounds=(0.01, 600.0)
    ),
    "summary_period": SUMMARY_PERIOD,
    "max_sequence_gap": Param(
        100000,
        "most frames one gap in a head's sequence numbers counts as missed; a larger jump is counted "
        "as a jump and adds none",
        bounds=(0, 2**62),
    ),
    "clock_skew_tolerance_ms": Param(
        1000.0,
        "how far the robot's clock may run ahead of the edge's: a stamp further in the future is left "
        "out of the latency statistics and counted (implausible_times)",
        bounds=(0.0, 3.6e6),
    ),
    "max_latency_ms": Param(
        60000.0,
        "oldest stamp taken as a latency; an older one is left out of the statistics and counted",
        bounds=(1.0, 3.6e6),
    ),
}


@dataclass(frozen=True)
class DecodedFrame:
    """What the decoding stage hands the network: the latent, and the frame's stats but for tail_ms and
    end_to_end_ms, which the network stage fills in."""

    latent: np.ndarray
    geometry: ImageGeometry
    stats: SplitStats
    stamp_plausible: bool  # the image stamp is one a clock could have made: end_to_end_ms is timed


class TailNode(Node):
    def __init__(self) -> None:
        super().__init__("tail")
        p = declare_parameters(self, PARAMETERS)
        self.score_threshold = p["score_threshold"]
        self.served: ServedRobots | None = None
        if p["server_url"]:
            self.serve_remotely(p)
            return
        from sc2_split.tail import TailPipeline  # torch: a client holds no model

        self.pipeline = TailPipeline.from_config(
            p["model_config"], p["checkpoint"], p["model_name"], p["device"], p["decode_workers"]
        )
        self.model_id = self.pipeline.model_id
        self.class_names = self.pipeline.class_names
        self.max_detections = p["max_detections"]
        self.window = LatencyWindow()
        self.rejected: Counter[str] = Counter()
        self._last_reject_log: dict[str, float] = {}
        self.sequences = SequenceGaps(p["max_sequence_gap"])
        self.skew_tolerance_ms = p["clock_skew_tolerance_ms"]
        self.max_latency_ms = p["max_latency_ms"]
        self.implausible_times = 0
        self.failed = 0  # both stages count failures: under _failed_lock
        self._failed_lock = threading.Lock()
        self._rejected_at_last_summary = 0

        self.detections_pub = self.create_publisher(Detection2DArray, "detections", RESULTS_QOS)
        self.stats_pub = self.create_publisher(SplitStats, "stats", RESULTS_QOS)
        label_info_pub = self.create_publisher(LabelInfo, "label_info", LABEL_INFO_QOS)
        label_info_pub.publish(self.label_info())
        self.network = NewestWinsWorker(self.detect, self.count_failure, name="tail_network")
        self.subscription = subscribe_with_sender(
            self, Bottleneck, "bottleneck", self.on_bottleneck, BOTTLENECK_QOS
        )
        self.diagnostics = CounterDiagnostics(self, self.model_id, warn_on=("rejected", "failed"))
        self.frames = 0
        self.summary_period_s = p["summary_period"]
        self.create_timer(self.summary_period_s, self.log_summary)
        if not p["checkpoint"]:
            self.get_logger().warning("no checkpoint given: random weights, no head will match them")
        pool = self.pipeline.decode_pool
        decoding = "decoding in process" if pool is None else f"decoding on processes {pool.pids}"
        self.get_logger().info(
            f"serving model {self.model_id} ({p['model_config']}) on {p['device']}, {decoding}; "
            f"bottlenecks from {self.subscription.topic_name}, detections to {self.detections_pub.topic_name}"
        )

    def serve_remotely(self, p: dict) -> None:
        """A thin client of the tail on the Triton server at `server_url`, for every robot listed: no
        model and no torch, the class names from the head's metadata."""
        from sc2_split.ros.served_robots import Publishing, ServedRobots  # tritonclient only here

        self.class_names = HeadMetadata.load(p["metadata_file_path"] or BUNDLED_HEAD).class_names
        publishing = Publishing(self.score_threshold, p["max_detections"], self.label_info())
        self.served = ServedRobots(
            self, p["server_url"], list(p["robots"]), publishing, p["max_in_flight"], p["request_timeout"],
            p["summary_period"], p["max_sequence_gap"], p["discover_robots"], p["max_robots"],
        )  # fmt: skip

    def destroy_node(self) -> None:
        if self.served is not None:
            self.served.close()
        else:
            self.network.close()
            self.pipeline.close()
        super().destroy_node()

    def label_info(self) -> LabelInfo:
        """Label index -> class name; index 0 is the background, which is never detected."""
        return LabelInfo(
            header=Header(stamp=self.get_clock().now().to_msg()),
            class_map=[
                VisionClass(class_id=i, class_name=n) for i, n in enumerate(self.class_names) if i > 0
            ],
            threshold=self.score_threshold,
        )

    @property
    def missed_frames(self) -> int:
        return self.sequences.missed

    @property
    def head_dropped_frames(self) -> int:
        return self.sequences.head_dropped_frames

    def on_bottleneck(self, msg: Bottleneck, sender: bytes) -> None:
        """Decoding stage, on the executor's thread: a checked, decoded latent for the network stage."""
        frame = self.admit(msg, sender, self.get_clock().now())
        if frame is not None:
            self.network.put(frame)

    def admit(self, msg: Bottleneck, sender: Hashable, received: Time) -> DecodedFrame | None:
        """The decoded frame of a bottleneck from `sender` received at `received`, or None if it was
        rejected or failed; only an accepted one moves the sequence and latency accounting."""
        try:
            frame = from_bottleneck(msg)
            started = time.perf_counter()
            latent = self.pipeline.decode(frame)
            decode_ms = 1e3 * (time.perf_counter() - started)
        except PayloadError as exc:
            self.sequences.unserved(sender)
            self.reject(exc)
            return None
        except Exception as exc:  # a payload must never take the node down
            self.sequences.unserved(sender)
            self.count_failure(exc)
            return None
        self.sequences.observe(sender, msg.sequence, msg.head_dropped_frames)
        # Includes any wait in this node's reader while the previous frame was decoded.
        transport_ms = self._plausible_ms(received, msg.sent)
        stamp_plausible = not math.isnan(self._plausible_ms(received, msg.header.stamp))
        head_ms = [
            plausible_ms(t, 0.0, self.max_latency_ms)
            for t in (msg.preprocess_ms, msg.encode_ms, msg.codec_ms)
        ]
        if math.isnan(transport_ms) or not stamp_plausible or any(math.isnan(t) for t in head_ms):
            self.implausible_times += 1
        stats = SplitStats(
            header=msg.header,
            model_id=msg.model_id,
            codec=msg.codec,
            payload_bytes=len(msg.data),
            preprocess_ms=head_ms[0],
            encode_ms=head_ms[1],
            codec_ms=head_ms[2],
            transport_ms=transport_ms,
            decode_ms=decode_ms,
            head_dropped_frames=msg.head_dropped_frames,
            tail_missed_frames=self.missed_frames,
            tail_rejected=saturating_add(0, self.rejected.total()),
        )
        return DecodedFrame(latent, frame.geometry, stats, stamp_plausible)

    def _plausible_ms(self, later: Time, earlier: TimeMsg) -> float:
        return plausible_ms(ms_since(later, earlier), self.skew_tolerance_ms, self.max_latency_ms)

    def detect(self, frame: DecodedFrame) -> None:
        """Network stage, on its own thread: detections and stats of a decoded frame, published.
        Its exceptions go to count_failure."""
        started = time.perf_counter()
        result = self.pipeline.detect(frame.latent, frame.geometry)
        stats = frame.stats
        stats.tail_ms = 1e3 * (time.perf_counter() - started)
        if not self.context.ok():  # shutting down
            return
        detections = Detections(**result, decode_ms=stats.decode_ms, tail_ms=stats.tail_ms)
        self.detections_pub.publish(
            to_detection_array(stats.header, detections, self.score_threshold, self.max_detections)
        )
        # Includes any wait for the network while it ran the previous frame.
        stats.end_to_end_ms = (
            ms_since(self.get_clock().now(), stats.header.stamp) if frame.stamp_plausible else math.nan
        )
        self.stats_pub.publish(stats)
        self.frames += 1
        self.window.add(
            preprocess_ms=stats.preprocess_ms,
            encode_ms=stats.encode_ms,
            codec_ms=stats.codec_ms,
            transport_ms=stats.transport_ms,
            decode_ms=stats.decode_ms,
            tail_ms=stats.tail_ms,
            end_to_end_ms=stats.end_to_end_ms,
            payload_bytes=stats.payload_bytes,
        )

    def count_failure(self, exc: Exception) -> None:
        """A bottleneck either stage failed on other than by its payload's fault: logged and counted."""
        with self._failed_lock:
            self.failed += 1
            failed = self.failed
        self.get_logger().error(
            bounded_line(f"tail failed on a bottleneck ({failed} so far): {exc!r}"), throttle_duration_sec=5.0
        )

    def reject(self, exc: PayloadError) -> None:
        self.rejected[exc.reason] += 1
        now = time.monotonic()
        if now - self._last_reject_log.get(exc.reason, -REJECT_LOG_PERIOD_S) >= REJECT_LOG_PERIOD_S:
            self._last_reject_log[exc.reason] = now
            self.get_logger().error(
                bounded_line(
                    f"rejected a bottleneck ({exc.reason}, {self.rejected[exc.reason]} so far): {exc}"
                )
            )

    def log_summary(self) -> None:
        frames, summary = self.window.take()
        rejected_total = self.rejected.total()
        counters = {
            "frames": self.frames,
            "head_dropped_frames": self.head_dropped_frames,
            "missed_frames": self.missed_frames,
            "sequence_jumps": self.sequences.jumps,
            "sequence_restarts": self.sequences.restarts,
            "senders": self.sequences.senders,
            "implausible_times": self.implausible_times,
            "dropped_frames": self.network.dropped,
            "rejected": rejected_total,
            **{f"rejected_{reason}": n for reason, n in sorted(self.rejected.items())},
            "failed": self.failed,
        }
        self.diagnostics.publish(counters, f"serving {self.model_id}")
        if not frames and rejected_total == self._rejected_at_last_summary:
            return
        self._rejected_at_last_summary = rejected_total
        rejected = ", ".join(f"{reason} {n}" for reason, n in sorted(self.rejected.items())) or "none"
        self.get_logger().info(
            f"{frames} frames in {self.summary_period_s:g} s ({frames / self.summary_period_s:.1f} Hz); "
            f"mean/p90: {summary or '-'}; since start: {self.head_dropped_frames} dropped by the head, "
            f"{self.missed_frames} missed ({self.sequences.jumps} sequence jumps, {self.sequences.restarts} "
            f"restarts), {self.implausible_times} implausible times, {self.network.dropped} dropped here "
            f"(network busy), rejected {rejected}, {self.failed} failed"
        )


def main(args: list[str] | None = None) -> None:
    spin_node(TailNode, args)


if __name__ == "__main__":
    main()
