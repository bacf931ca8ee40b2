"""The nodes' counters on /diagnostics (diagnostic_msgs), where rqt_runtime_monitor, the diagnostic
aggregator and tests read them: frames seen, dropped, missed, rejected by reason, failed."""

from collections.abc import Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

DIAGNOSTICS_TOPIC = "/diagnostics"
DIAGNOSTICS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class CounterDiagnostics:
    """Publishes one DiagnosticStatus named after the node (or `name`, e.g. one per robot that a served
    tail's node relays), WARN while `warn_on` counters grow."""

    def __init__(self, node: Node, hardware_id: str, warn_on: tuple[str, ...] = (), name: str = "") -> None:
        self.node = node
        self.name = name or node.get_fully_qualified_name()
        self.hardware_id = hardware_id
        self.warn_on = warn_on
        self.publisher = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
        self._previous: dict[str, int] = {}

    def publish(self, counters: Mapping[str, int], message: str) -> None:
        growing = [k for k in self.warn_on if counters.get(k, 0) > self._previous.get(k, 0)]
        self._previous = dict(counters)
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if growing else DiagnosticStatus.OK,
            name=self.name,
            message=f"{message}; growing: {', '.join(growing)}" if growing else message,
            hardware_id=self.hardware_id,
            values=[KeyValue(key=k, value=str(v)) for k, v in counters.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.node.get_clock().now().to_msg()
        self.publisher.publish(array)
