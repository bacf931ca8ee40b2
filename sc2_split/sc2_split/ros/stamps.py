"""Durations between message stamps, read on the receiving node's clock."""

from builtin_interfaces.msg import Time as TimeMsg
from rclpy.time import Time


def ms_since(later: Time, earlier: TimeMsg) -> float:
    """Milliseconds from a message's time to `later`, read on `later`'s clock (ROS or simulated time).

    From the fields, not rclpy's Time: the stamps come from other machines, and a Time before 1970
    (negative seconds) raises, which would take the node down on a payload it has already served.
    """
    return (later.nanoseconds - (earlier.sec * 10**9 + earlier.nanosec)) / 1e6
