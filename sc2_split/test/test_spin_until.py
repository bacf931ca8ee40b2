"""spin_until, the one wait of the harness: it runs the executor's callbacks until the condition they
change holds, gives up at the timeout, and runs its per-step check while it waits."""

import time
from collections.abc import Iterator

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from sc2_split.testing.spin_until import spin_until


@pytest.fixture
def node(ros_env: dict[str, str]) -> Iterator[tuple[Node, SingleThreadedExecutor]]:
    context = Context()
    domain = int(ros_env["ROS_DOMAIN_ID"])
    rclpy.init(context=context, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
    node = Node("spin_until_test", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    yield node, executor
    node.destroy_node()
    context.try_shutdown()


def test_returns_once_a_callback_made_the_condition_true(node) -> None:
    node, executor = node
    fired: list[float] = []
    started = time.monotonic()
    node.create_timer(0.2, lambda: fired.append(time.monotonic()))
    assert spin_until(executor, lambda: fired, 10.0)
    assert len(fired) == 1 and fired[0] - started >= 0.2


def test_gives_up_at_the_timeout_and_checks_at_every_step(node) -> None:
    _, executor = node
    steps: list[float] = []
    started = time.monotonic()
    assert not spin_until(executor, lambda: False, 0.3, lambda: steps.append(time.monotonic()))
    assert time.monotonic() - started >= 0.3
    assert len(steps) >= 3 and all(t - started < 0.3 for t in steps)


def test_a_failing_check_ends_the_wait(node) -> None:
    _, executor = node

    def process_exited() -> None:
        raise RuntimeError("the tail node exited")

    with pytest.raises(RuntimeError, match="exited"):
        spin_until(executor, lambda: False, 10.0, process_exited)
