"""The head's rate control in ROS terms: the tail's `stats` in, the operating point to send at out.

Each SplitStats names the model and codec that coded its frame; its stamp is the camera's, so the
round trip is read on the robot's own clock. The link's part of it is the stats' transport_ms (head
publish to tail receipt, which needs the robot's and the edge's clocks in step; the tail sends NaN
for a time no clock skew explains): the rest, the head's and tail's work and any wait for a busy
tail network, is not the link's. Without it, the link's part is the round trip less the work.

The policy decides on every answer and on a timer, since a link that has stopped answering sends
nothing to decide on. Switches are logged here; the head counts them.
"""

import math
import threading
from collections import deque

from builtin_interfaces.msg import Time as TimeMsg
from rclpy.node import Node

from sc2_split.control.link_estimate import FrameFeedback, LinkEstimator
from sc2_split.control.operating_points import OperatingPoint
from sc2_split.control.rate_policy import RatePolicy
from sc2_split.ros.topics import RESULTS_QOS
from sc2_split_msgs.msg import SplitStats

# How often the policy looks at a link that sends no answers, and the span the send rate is taken over.
DECIDE_PERIOD_S = 0.1
SEND_RATE_SPAN_S = 2.0


class AdaptiveRate:
    """Thread-safe: the head's encoder thread reads `current` and calls `sent`, the executor feeds
    answers and runs the timer."""

    def __init__(self, node: Node, points: tuple[OperatingPoint, ...], latency_budget_ms: float) -> None:
        self.node = node
        self.policy = RatePolicy(points, latency_budget_ms)
        # A slow tail answers seldom: feedback a few budgets old still tells of the link.
        self.link = LinkEstimator(max_age_s=max(5.0, 5 * latency_budget_ms / 1e3))
        self._by_model: dict[tuple[str, str], str] = {}
        self._sends: deque[float] = deque(maxlen=1024)
        self._lock = threading.Lock()
        node.create_subscription(SplitStats, "stats", self._on_stats, RESULTS_QOS)
        node.create_timer(DECIDE_PERIOD_S, self._decide)

    @property
    def current(self) -> OperatingPoint:
        with self._lock:
            return self.policy.current

    def name_model(self, point: OperatingPoint, model_id: str) -> None:
        """Stats name a frame's rate by model id and codec: which point sent with them."""
        self._by_model[(model_id, point.codec)] = point.name

    def sent(self, stamp: TimeMsg) -> None:
        """A frame with this camera stamp went out at the current rate."""
        now = self._now_s()
        with self._lock:
            self.policy.sent(_seconds(stamp))
            self._sends.append(now)

    def _now_s(self) -> float:
        return self.node.get_clock().now().nanoseconds / 1e9

    def _on_stats(self, msg: SplitStats) -> None:
        point = self._by_model.get((msg.model_id, msg.codec))
        if point is None:  # another head's frame, on a shared topic
            return
        now = self._now_s()
        round_trip_ms = 1e3 * (now - _seconds(msg.header.stamp))
        work_ms = msg.preprocess_ms + msg.encode_ms + msg.codec_ms + msg.decode_ms + msg.tail_ms
        other_ms = round_trip_ms - msg.transport_ms if math.isfinite(msg.transport_ms) else work_ms
        if not math.isfinite(other_ms):  # timings the tail found implausible: nothing to learn
            return
        feedback = FrameFeedback(
            now, point, msg.payload_bytes, round_trip_ms, other_ms, msg.tail_missed_frames
        )
        with self._lock:
            self.link.observe(feedback)
        self._decide()

    def _decide(self) -> None:
        now = self._now_s()
        with self._lock:
            frames_per_s = sum(now - t <= SEND_RATE_SPAN_S for t in self._sends) / SEND_RATE_SPAN_S
            switch = self.policy.decide(now, self.link, frames_per_s)
        if switch is not None:
            self.node.get_logger().info(switch.describe())


def _seconds(stamp: TimeMsg) -> float:
    return stamp.sec + stamp.nanosec / 1e9
