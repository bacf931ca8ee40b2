"""Waiting on ROS: spin an executor until a condition holds or a timeout passes."""

import time
from collections.abc import Callable

from rclpy.executors import Executor

# Longest single spin: how late a condition that a callback made true (or a deadline) is noticed.
SPIN_STEP_S = 0.05


def spin_until(
    executor: Executor,
    done: Callable[[], object],
    timeout_s: float,
    each_step: Callable[[], None] | None = None,
) -> bool:
    """Spins `executor` until `done()` is true or `timeout_s` has passed, and returns whether it is
    done. `each_step` runs before each spin, e.g. a check that the processes waited on still run."""
    deadline = time.monotonic() + timeout_s
    while not done():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if each_step is not None:
            each_step()
        executor.spin_once(timeout_sec=min(SPIN_STEP_S, left))
    return True
