"""An emulated uplink for tests where network namespaces cannot be made: a node that forwards the
head's bottlenecks to the tail through one bounded queue at a set rate, or drops them all while the
link is down. The test changes `bytes_per_s` and `up` as it goes."""

import time
from collections import deque

from rclpy.context import Context
from rclpy.node import Node

from sc2_split.ros.topics import BOTTLENECK_QOS
from sc2_split_msgs.msg import Bottleneck

# How often queued messages are let through: the rate's granularity.
RELEASE_PERIOD_S = 0.01


class LinkRelay(Node):
    """`uplink/bottleneck` (where the head publishes, remapped) to `bottleneck` (the tail's): each
    message leaves once its payload has had its time at `bytes_per_s` behind the ones before it; one
    that would wait longer than `max_queue_s` is dropped, as a router's bounded buffer drops it."""

    def __init__(self, context: Context, bytes_per_s: float = 1e12, max_queue_s: float = 1.0) -> None:
        super().__init__("link_relay", context=context)
        self.bytes_per_s = bytes_per_s
        self.max_queue_s = max_queue_s
        self.up = True
        self.forwarded = 0
        self.dropped = 0
        self._free_at = 0.0
        self._queue: deque[tuple[float, Bottleneck]] = deque()
        self._publisher = self.create_publisher(Bottleneck, "bottleneck", BOTTLENECK_QOS)
        self.create_subscription(Bottleneck, "uplink/bottleneck", self._on_bottleneck, BOTTLENECK_QOS)
        self.create_timer(RELEASE_PERIOD_S, self._release)

    def _on_bottleneck(self, msg: Bottleneck) -> None:
        now = time.monotonic()
        start = max(now, self._free_at)
        if not self.up or start - now > self.max_queue_s:
            self.dropped += 1
            return
        self._free_at = start + len(msg.data) / self.bytes_per_s
        self._queue.append((self._free_at, msg))

    def _release(self) -> None:
        now = time.monotonic()
        while self._queue and self._queue[0][0] <= now:
            self._publisher.publish(self._queue.popleft()[1])
            self.forwarded += 1
