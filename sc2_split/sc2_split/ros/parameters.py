"""Node parameters declared from one table per node, so that the launch tests can read the names too."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from sc2_split.ros.topics import CAMERA_TOPICS, RELIABILITY


@dataclass(frozen=True)
class Param:
    default: str | int | float | bool | list[str]
    description: str
    choices: tuple[str, ...] = ()
    # Inclusive bounds of a number, checked by rclpy when the parameter is set.
    bounds: tuple[float, float] | None = None

    def descriptor(self) -> ParameterDescriptor:
        # Read once at start-up: read-only, so that `ros2 param set` cannot pretend to change them.
        descriptor = ParameterDescriptor(description=self.description, read_only=True)
        if self.choices:
            descriptor.additional_constraints = f"one of: {', '.join(self.choices)}"
        if self.bounds is not None and isinstance(self.default, float):
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=self.bounds[0], to_value=self.bounds[1])
            ]
        elif self.bounds is not None:
            low, high = (int(b) for b in self.bounds)
            descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
        return descriptor


def declare_parameters(node: Node, table: Mapping[str, Param]) -> dict[str, Any]:
    """Declares the table's parameters on `node` and returns their values; a value outside its
    choices is a ValueError that names the parameter and the choices."""
    declared = node.declare_parameters("", [(name, p.default, p.descriptor()) for name, p in table.items()])
    values = {parameter.name: parameter.value for parameter in declared}
    for name, p in table.items():
        if p.choices and values[name] not in p.choices:
            raise ValueError(f"parameter {name} is {values[name]!r}; expected one of: {', '.join(p.choices)}")
    return values


# The camera subscription of every node that reads the robot's frames (head, overlay).
CAMERA_PARAMETERS = {
    "image_transport": Param(
        "raw",
        "raw: subscribe `image` (sensor_msgs/Image); compressed: `image/compressed`",
        tuple(CAMERA_TOPICS),
    ),
    "qos_reliability": Param(
        "best_effort", "camera subscription: best_effort (sensor data QoS) or reliable", tuple(RELIABILITY)
    ),
}


# The nodes' period of counters on /diagnostics and summary lines in their logs.
SUMMARY_PERIOD = Param(
    5.0, "seconds between counters on /diagnostics and summary lines in the log", bounds=(0.1, 3600.0)
)
