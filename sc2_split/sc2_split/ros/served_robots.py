"""The tail node's robots when its tail is served (`server_url` set): one edge process, many robots.

Each robot namespace `ns` gets `ns/bottleneck` in and `ns/detections`, `ns/stats`, `ns/label_info`
out, with its frames' own stamps and frame ids, and its own counters on /diagnostics (a status named
`<node>/<ns>`). Every robot has its own bound on requests in flight, so a robot that floods the link
takes no other robot's slots; a frame that finds its robot's slots taken is dropped and counted.
Sequence numbers count per sender as in the in-process tail (sequence_gaps.py): a bottleneck this node
rejects is unserved, one it sends has counted, whatever the server answers.
"""

import threading
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass

from rclpy.node import Node
from rclpy.time import Time
from vision_msgs.msg import Detection2DArray, LabelInfo

from sc2_split.codecs.payload import PayloadError
from sc2_split.frames import Detections
from sc2_split.ros.bottleneck_conversion import from_bottleneck
from sc2_split.ros.detections_conversion import to_detection_array
from sc2_split.ros.diagnostics import CounterDiagnostics
from sc2_split.ros.latency_window import LatencyWindow
from sc2_split.ros.senders import subscribe_with_sender
from sc2_split.ros.stamps import ms_since
from sc2_split.ros.topics import BOTTLENECK_QOS, LABEL_INFO_QOS, RESULTS_QOS
from sc2_split.sequence_gaps import SequenceGaps
from sc2_split.serving.client import RequestLostError, ServedTail
from sc2_split.untrusted import bounded_line
from sc2_split_msgs.msg import Bottleneck, SplitStats

# Each robot's lost requests and rejections are logged at most this often (a dead server loses every
# frame of every robot).
LOG_PERIOD_S = 5.0
# With discovery, how often the graph is searched for robots publishing bottlenecks.
DISCOVERY_PERIOD_S = 1.0
TOPIC = "bottleneck"
BOTTLENECK_TYPE = "sc2_split_msgs/msg/Bottleneck"


@dataclass(frozen=True)
class Publishing:
    """What every robot's detections are filtered by, and its label_info."""

    score_threshold: float
    max_detections: int
    label_info: LabelInfo


class RobotLink:
    """One robot's topics, counters and requests."""

    def __init__(
        self, node: Node, namespace: str, tail: ServedTail, publishing: Publishing, max_sequence_gap: int
    ) -> None:
        self.node, self.tail, self.publishing = node, tail, publishing
        self.namespace = namespace.strip("/")
        prefix = f"{self.namespace}/" if self.namespace else ""
        self.detections_pub = node.create_publisher(Detection2DArray, f"{prefix}detections", RESULTS_QOS)
        self.stats_pub = node.create_publisher(SplitStats, f"{prefix}stats", RESULTS_QOS)
        label_info_pub = node.create_publisher(LabelInfo, f"{prefix}label_info", LABEL_INFO_QOS)
        label_info_pub.publish(publishing.label_info)
        self.subscription = subscribe_with_sender(
            node, Bottleneck, f"{prefix}{TOPIC}", self.on_bottleneck, BOTTLENECK_QOS
        )
        name = f"{node.get_fully_qualified_name()}/{self.namespace}" if self.namespace else ""
        self.diagnostics = CounterDiagnostics(node, self.namespace or "robot", ("rejected", "lost"), name)
        self.window = LatencyWindow()
        self._lock = threading.Lock()  # counters change on the executor's and gRPC's threads
        self.frames = self.dropped_frames = self.failed = 0
        self.sequences = SequenceGaps(max_sequence_gap)
        self.rejected: Counter[str] = Counter()
        self.lost: Counter[str] = Counter()
        self._last_log: dict[str, float] = {}

    def on_bottleneck(self, msg: Bottleneck, sender: Hashable) -> None:
        received = self.node.get_clock().now()
        try:
            frame = from_bottleneck(msg)
        except PayloadError as exc:
            with self._lock:
                self.sequences.unserved(sender)
            self.count_rejected(exc)
            return
        with self._lock:
            self.sequences.observe(sender, msg.sequence, msg.head_dropped_frames)
        if not self.tail.submit(frame, lambda result: self.on_result(msg, received, result)):
            with self._lock:
                self.dropped_frames += 1

    def on_result(self, msg: Bottleneck, received: Time, result: Detections | Exception) -> None:
        """On a gRPC thread: the frame's detections and stats published, or its loss counted."""
        if isinstance(result, PayloadError):
            self.count_rejected(result)
            return
        if isinstance(result, RequestLostError):
            with self._lock:
                self.lost[result.reason] += 1
                lost = self.lost.total()
            self.log_throttled(
                f"lost:{result.reason}", f"lost a frame ({result.reason}, {lost} so far): {result}"
            )
            return
        if not isinstance(result, Detections):
            with self._lock:
                self.failed += 1
                failed = self.failed
            self.log_throttled("failed", f"the server failed on a frame ({failed} so far): {result}")
            return
        if not self.node.context.ok():  # shutting down
            return
        p = self.publishing
        self.detections_pub.publish(
            to_detection_array(msg.header, result, p.score_threshold, p.max_detections)
        )
        now = self.node.get_clock().now()
        stats = SplitStats(
            header=msg.header,
            model_id=msg.model_id,
            codec=msg.codec,
            payload_bytes=len(msg.data),
            preprocess_ms=msg.preprocess_ms,
            encode_ms=msg.encode_ms,
            codec_ms=msg.codec_ms,
            transport_ms=ms_since(received, msg.sent),
            decode_ms=result.decode_ms,
            # The server's network time for the batch this frame was in.
            tail_ms=result.tail_ms,
            end_to_end_ms=ms_since(now, msg.header.stamp),
            head_dropped_frames=msg.head_dropped_frames,
            tail_missed_frames=self.sequences.missed,
            tail_rejected=self.rejected.total(),
        )
        self.stats_pub.publish(stats)
        with self._lock:
            self.frames += 1
        self.window.add(
            transport_ms=stats.transport_ms,
            request_ms=(now - received).nanoseconds / 1e6,
            decode_ms=stats.decode_ms,
            tail_ms=stats.tail_ms,
            end_to_end_ms=stats.end_to_end_ms,
            payload_bytes=stats.payload_bytes,
        )

    def count_rejected(self, exc: PayloadError) -> None:
        with self._lock:
            self.rejected[exc.reason] += 1
            n = self.rejected[exc.reason]
        self.log_throttled(
            f"rejected:{exc.reason}", f"rejected a bottleneck ({exc.reason}, {n} so far): {exc}"
        )

    def log_throttled(self, key: str, text: str) -> None:
        now = self.node.get_clock().now().nanoseconds / 1e9
        with self._lock:
            if now - self._last_log.get(key, -LOG_PERIOD_S) < LOG_PERIOD_S:
                return
            self._last_log[key] = now
        # Model ids and server messages carry what robots sent: cut short.
        self.node.get_logger().error(bounded_line(f"{self.namespace or 'robot'}: {text}"))

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {
                "frames": self.frames,
                "head_dropped_frames": self.sequences.head_dropped_frames,
                "missed_frames": self.sequences.missed,
                "sequence_jumps": self.sequences.jumps,
                "sequence_restarts": self.sequences.restarts,
                "senders": self.sequences.senders,
                "dropped_frames": self.dropped_frames,
                "rejected": self.rejected.total(),
                **{f"rejected_{reason}": n for reason, n in sorted(self.rejected.items())},
                "lost": self.lost.total(),
                **{f"lost_{reason}": n for reason, n in sorted(self.lost.items())},
                "failed": self.failed,
            }


class ServedRobots:
    """Every robot of a tail node whose tail runs on the Triton server at `url`: those of `robots`
    from the start and, with `discover`, each namespace under the node's that publishes a
    `<ns>/bottleneck` (sc2_split_msgs/Bottleneck), found every DISCOVERY_PERIOD_S; at most
    `max_robots` in all, each added once."""

    def __init__(
        self,
        node: Node,
        url: str,
        robots: list[str],
        publishing: Publishing,
        max_in_flight: int,
        timeout_s: float,
        summary_period_s: float,
        max_sequence_gap: int,
        discover: bool = False,
        max_robots: int = 64,
    ) -> None:
        if len(set(robots)) != len(robots):
            raise ValueError(f"robots lists a namespace twice: {robots}")
        if len(robots) > max_robots:
            raise ValueError(f"robots lists {len(robots)} namespaces, max_robots is {max_robots}")
        self.node, self.url, self.publishing = node, url, publishing
        self.max_in_flight, self.timeout_s, self.max_sequence_gap = max_in_flight, timeout_s, max_sequence_gap
        self.max_robots = max_robots
        self.summary_period_s = summary_period_s
        # By the resolved bottleneck topic, so that a listed robot is not discovered again.
        self.links: dict[str, RobotLink] = {}
        self.refused = 0  # discovered namespaces not served: max_robots reached
        self._last_refusal_log = -LOG_PERIOD_S
        for namespace in robots:
            self.add(namespace)
        node.create_timer(summary_period_s, self.log_summary)
        topics = ", ".join(self.links) or "none yet"
        found = f"; every {DISCOVERY_PERIOD_S:g} s, robots found publishing */{TOPIC}" if discover else ""
        node.get_logger().info(
            f"tail served by {url}, {max_in_flight} requests in flight per robot, at most {max_robots} "
            f"robots; bottlenecks from {topics}{found}"
        )
        if discover:
            node.create_timer(DISCOVERY_PERIOD_S, self.discover)

    def add(self, namespace: str) -> RobotLink:
        tail = ServedTail(self.url, self.max_in_flight, self.timeout_s)
        link = RobotLink(self.node, namespace, tail, self.publishing, self.max_sequence_gap)
        self.links[link.subscription.topic_name] = link
        return link

    def discover(self) -> None:
        """Adds the robots that publish bottlenecks under this node's namespace and are not served yet."""
        base = self.node.get_namespace().rstrip("/")
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self.links or BOTTLENECK_TYPE not in types or not topic.endswith(f"/{TOPIC}"):
                continue
            namespace = topic.removesuffix(f"/{TOPIC}")
            under_this_node = namespace == base or namespace.startswith(f"{base}/")
            if not under_this_node or not self.node.count_publishers(topic):
                continue
            if len(self.links) >= self.max_robots:
                self.refuse(topic)
                continue
            link = self.add(namespace.removeprefix(base))
            self.node.get_logger().info(
                bounded_line(
                    f"serving {link.namespace or 'robot'} (discovered {topic}), {len(self.links)} robots"
                )
            )

    def refuse(self, topic: str) -> None:
        """A robot found past max_robots: not served, counted, logged at most every LOG_PERIOD_S."""
        self.refused += 1
        now = self.node.get_clock().now().nanoseconds / 1e9
        if now - self._last_refusal_log >= LOG_PERIOD_S:
            self._last_refusal_log = now
            self.node.get_logger().warning(
                bounded_line(
                    f"not serving {topic}: max_robots ({self.max_robots}) reached ({self.refused} refusals "
                    "so far, counted again at each discovery)"
                )
            )

    def close(self) -> None:
        for link in self.links.values():
            link.tail.close()

    def log_summary(self) -> None:
        for link in self.links.values():
            counters = link.counters()
            link.diagnostics.publish(counters, f"served by {link.tail.url}")
            frames, summary = link.window.take()
            if frames or counters["lost"] or counters["rejected"]:
                self.node.get_logger().info(
                    f"{link.namespace or 'robot'}: {frames} frames in {self.summary_period_s:g} s "
                    f"({frames / self.summary_period_s:.1f} Hz); mean/p90: {summary or '-'}; since start: "
                    f"{counters['missed_frames']} missed, {counters['dropped_frames']} dropped here "
                    f"(requests in flight full), {counters['lost']} lost, {counters['rejected']} rejected, "
                    f"{counters['failed']} failed"
                )
