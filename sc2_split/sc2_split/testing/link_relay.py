"""An emulated uplink for tests and benchmarks where network namespaces cannot be made: a node that
forwards the robot's messages to the edge through one bounded queue at a set rate, or drops them all
while the link is down. A test in the same process changes `bytes_per_s` and `up` as it goes; as its
own process (`python -m sc2_split.testing.link_relay`), it takes them on stdin, one a line:
`rate BYTES_PER_S`, `down`, `up`, and prints what it forwarded and dropped when stdin closes."""

import argparse
import contextlib
import json
import sys
import threading
import time
from collections import deque

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage

from sc2_split.ros.topics import BOTTLENECK_QOS, RESULTS_QOS
from sc2_split_msgs.msg import Bottleneck

# How often queued messages are let through: the rate's granularity.
RELEASE_PERIOD_S = 0.01
# What the relay can carry: the head's bottlenecks, or full offloading's frames (JPEG, or a video
# stream's packets, whose every one counts: reliable, a queue of several, as RESULTS_QOS is).
CARRIED = {
    "bottleneck": (Bottleneck, BOTTLENECK_QOS),
    "image/compressed": (CompressedImage, RESULTS_QOS),
}


class LinkRelay(Node):
    """`uplink/TOPIC` (where the robot publishes, remapped) to `TOPIC` (the edge's): each message
    leaves once its payload (`data`) has had its time at `bytes_per_s` behind the ones before it;
    one that would wait longer than `max_queue_s` is dropped, as a router's bounded buffer drops it."""

    def __init__(
        self,
        context: Context | None = None,
        bytes_per_s: float = 1e12,
        max_queue_s: float = 1.0,
        topic: str = "bottleneck",
    ) -> None:
        super().__init__("link_relay", context=context)
        message_type, qos = CARRIED[topic]
        self.bytes_per_s = bytes_per_s
        self.max_queue_s = max_queue_s
        self.up = True
        self.forwarded = 0
        self.dropped = 0
        self._free_at = 0.0
        self._queue: deque[tuple[float, object]] = deque()
        self._publisher = self.create_publisher(message_type, topic, qos)
        self.create_subscription(message_type, f"uplink/{topic}", self._on_message, qos)
        self.create_timer(RELEASE_PERIOD_S, self._release)

    def _on_message(self, msg: Bottleneck | CompressedImage) -> None:
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

    def command(self, line: str) -> None:
        """One line of the process's stdin: `rate BYTES_PER_S`, `down` or `up`."""
        words = line.split()
        if words[:1] == ["rate"] and len(words) == 2:
            self.bytes_per_s = float(words[1])
        elif words in (["down"], ["up"]):
            self.up = words == ["up"]
        elif words:
            raise ValueError(f"link_relay: unknown command {line.strip()!r}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sc2_split.testing.link_relay", description=__doc__)
    p.add_argument("--topic", choices=sorted(CARRIED), default="bottleneck")
    p.add_argument("--max-queue", type=float, default=1.0, help="seconds of the link's buffer")
    args, ros_args = p.parse_known_args(argv)
    rclpy.init(args=ros_args)
    relay = LinkRelay(max_queue_s=args.max_queue, topic=args.topic)
    executor = SingleThreadedExecutor()
    executor.add_node(relay)

    def spin() -> None:
        with contextlib.suppress(ExternalShutdownException):  # stdin closed: shut down below
            executor.spin()

    spinning = threading.Thread(target=spin, daemon=True)
    spinning.start()
    try:
        for line in sys.stdin:
            relay.command(line)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    print(json.dumps({"forwarded": relay.forwarded, "dropped": relay.dropped}), flush=True)
    rclpy.try_shutdown()  # ends the executor's spin
    spinning.join()
    relay.destroy_node()
    return 0


if __name__ == "__main__":
    sys.exit(main())
