"""The life of a node process, as ros2/examples write it: init, spin until Ctrl-C or an external
shutdown, then destroy the node and shut down."""

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node

# Where every distribution defines it: Kilted re-exports it from rclpy.subscription, Jazzy does not.
RCLError = rclpy_implementation.RCLError


def spin_node(make_node: Callable[[], Node], args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    try:
        node = make_node()
    except BaseException:
        rclpy.try_shutdown()
        raise
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        # Ctrl-C's signal handler can shut the context down while the executor builds its wait set:
        # that is the shutdown asked for, not a failure.
        if rclpy.ok():
            raise
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
