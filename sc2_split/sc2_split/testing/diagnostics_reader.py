"""The other end of CounterDiagnostics: the newest counters of each split node, read from /diagnostics,
for the soak benchmark and the tests that check what the nodes counted."""

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from sc2_split.ros.diagnostics import DIAGNOSTICS_QOS, DIAGNOSTICS_TOPIC


class DiagnosticsReader:
    """`counters["/head"]["dropped_frames"]`: the values of the last status each node published."""

    def __init__(self, node: Node) -> None:
        self.counters: dict[str, dict[str, int]] = {}
        node.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics, DIAGNOSTICS_QOS)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.counters[status.name] = {kv.key: int(kv.value) for kv in status.values}

    def get(self, node_name: str, counter: str) -> int:
        """0 until the node has published: every counter starts there."""
        return self.counters.get(node_name, {}).get(counter, 0)
