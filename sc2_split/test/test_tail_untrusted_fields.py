"""Forged fields of a Bottleneck (sequence numbers, stamps, timings, long strings) cannot corrupt the
tail: a rejected message changes only the rejection counters, counters stay within their uint64
fields, implausible times stay out of the latency statistics, and no log line outgrows its bound.

In process, hypothesis drives every field through the tail node's own handler; then a tail node
process gets forged messages from a second publisher and from the robot's own, between valid frames
whose SplitStats and /diagnostics counters must come out exactly right."""

import array
import copy
import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import rclpy
from builtin_interfaces.msg import Time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from sc2_split.ros.topics import BOTTLENECK_QOS
from sc2_split.testing.node_process import isolated_ros_env, node_process
from sc2_split.untrusted import MAX_LOG_LINE, UINT64_MAX
from split_fixtures import Camera, tail_params

from sc2_split_msgs.msg import Bottleneck, SplitStats

# A log line is its text (bounded by MAX_LOG_LINE) behind rcutils' prefix: level, stamp, node name.
LOG_LINE_LIMIT = MAX_LOG_LINE + 120
SKEW_TOLERANCE_MS, MAX_LATENCY_MS, MAX_GAP = 1000.0, 60000.0, 100000
LONG = "m" * 1_000_000
FORGED_FRAME = "forged_frame"

U32, U64 = st.integers(0, 2**32 - 1), st.integers(0, UINT64_MAX)
TEXT = st.text(max_size=24) | st.sampled_from([LONG, "\x1b[2J\n" * 2000, "\x00" * 300])
STAMP = st.builds(Time, sec=st.integers(-(2**31), 2**31 - 1), nanosec=U32)
FLOAT32 = st.floats(width=32)
FIELDS = {
    "sequence": U64,
    "head_dropped_frames": U64,
    "sent": STAMP,
    "stamp": STAMP,
    "frame_id": TEXT,
    "model_id": TEXT,
    "codec": TEXT,
    "dtype": TEXT,
    "codec_version": st.integers(0, 2**16 - 1),
    "preprocess_ms": FLOAT32,
    "encode_ms": FLOAT32,
    "codec_ms": FLOAT32,
    "scale": st.floats(),
    "zero_point": st.integers(-(2**31), 2**31 - 1),
    "shape": st.lists(U32, max_size=10),
    "chunk_sizes": st.lists(U32, max_size=30),
    "data": st.binary(max_size=256).map(lambda b: array.array("B", b)),
    **{f"{kind}_{side}": U32 for kind in ("image", "resized", "padded") for side in ("height", "width")},
}


@st.composite
def forged(draw: st.DrawFn, valid: dict[str, Bottleneck]) -> tuple[int, Bottleneck]:
    """(sender, message): a valid message with up to three fields set to any value of their type."""
    msg = copy.deepcopy(draw(st.sampled_from(list(valid.values()))))
    for name in draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=3)):
        value = draw(FIELDS[name])
        target = msg.header if name in ("stamp", "frame_id") else msg
        setattr(target, name, value)
    return draw(st.integers(0, 3)), msg


@pytest.fixture(scope="module")
def tail_node(exported_head: dict[str, str]) -> Iterator:
    """A tail node in this process, in a DDS domain of its own, with the shipped tolerances."""
    from sc2_split.ros.tail_node import TailNode

    overrides = tail_params(exported_head, summary_period=3600.0)
    args = ["--ros-args", *(a for k, v in overrides.items() for a in ("-p", f"{k}:={v}"))]
    domain_id = int(isolated_ros_env()["ROS_DOMAIN_ID"])
    rclpy.init(args=args, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
    node = TailNode()
    assert (node.skew_tolerance_ms, node.max_latency_ms, node.sequences.max_gap) == (
        SKEW_TOLERANCE_MS,
        MAX_LATENCY_MS,
        MAX_GAP,
    )
    yield node
    node.destroy_node()
    rclpy.shutdown()


def _state(node: Node) -> tuple[int, ...]:
    """What only an accepted bottleneck may change."""
    s = node.sequences
    return (s.missed, s.jumps, s.restarts, s.head_dropped_frames, node.implausible_times)


def _check_latency(value: float, low: float) -> None:
    assert math.isnan(value) or low <= value <= MAX_LATENCY_MS, value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_forged_fields_through_the_tail_handler_leave_its_state_well_formed(
    data: st.DataObject, tail_node: Node, valid: dict[str, Bottleneck], capfd: pytest.CaptureFixture
) -> None:
    for sender, msg in data.draw(st.lists(forged(valid), min_size=1, max_size=4)):
        before, rejected, missed = _state(tail_node), tail_node.rejected.total(), tail_node.missed_frames
        frame = tail_node.admit(msg, sender, tail_node.get_clock().now())
        assert tail_node.failed == 0
        if frame is None:
            assert _state(tail_node) == before and tail_node.rejected.total() == rejected + 1
        else:
            stats: SplitStats = frame.stats
            assert 0 <= tail_node.missed_frames - missed <= MAX_GAP
            assert stats.tail_missed_frames == tail_node.missed_frames
            _check_latency(stats.transport_ms, -SKEW_TOLERANCE_MS)
            for value in (stats.preprocess_ms, stats.encode_ms, stats.codec_ms):
                _check_latency(value, 0.0)
        for counter in (*_state(tail_node), tail_node.rejected.total(), tail_node.sequences.senders):
            assert isinstance(counter, int) and 0 <= counter <= UINT64_MAX
    for line in capfd.readouterr().err.splitlines():
        assert len(line) <= LOG_LINE_LIMIT, line[:200]


def test_forged_messages_leave_the_next_valid_frames_stats_and_counters_correct(
    exported_head: dict[str, str],
    valid: dict[str, Bottleneck],
    camera: Camera,
    ros_env: dict[str, str],
    tmp_path: Path,
) -> None:
    camera.node.destroy_subscription(camera.bottleneck_sub)  # the tail's must be the only one
    robot = camera.node.create_publisher(Bottleneck, "bottleneck", BOTTLENECK_QOS)
    forger_node = Node("forger", context=camera.node.context)
    forger = forger_node.create_publisher(Bottleneck, "bottleneck", BOTTLENECK_QOS)

    def message(sequence: int, **fields: object) -> Bottleneck:
        """The valid entropy bottleneck stamped and sent now, numbered `sequence`, some fields replaced."""
        msg = copy.deepcopy(valid["entropy"])
        now = camera.node.get_clock().now().to_msg()
        msg.header.stamp, msg.sent, msg.sequence, msg.head_dropped_frames = now, now, sequence, sequence % 5
        for name, value in fields.items():
            setattr(msg.header if name in ("stamp", "frame_id") else msg, name, value)
        return msg

    def send(publisher: object, sequence: int, served: bool, **fields: object) -> None:
        """One message, and the tail's answer awaited: its stats, or its count of rejections."""
        stats, rejected = len(camera.stats), camera.counter("/tail", "rejected")
        publisher.publish(message(sequence, **fields))
        if served:
            camera.spin_until(lambda: len(camera.stats) > stats, f"the stats of bottleneck {sequence}")
        else:
            camera.spin_until(lambda: camera.counter("/tail", "rejected") > rejected, "the rejection")

    ahead, past = Time(sec=2**31 - 1, nanosec=999_999_999), Time(sec=1)
    forged_frame = {"frame_id": FORGED_FRAME}  # of the forger's messages that the tail serves
    from_the_future = {"sent": ahead, "stamp": ahead, "head_dropped_frames": UINT64_MAX, **forged_frame}
    plan = [
        (robot, 0, True, {}),
        (forger, UINT64_MAX, True, from_the_future),
        (robot, UINT64_MAX, False, {"codec": "\x1b[2J\n" * 20_000}),  # the robot's own, corrupt
        (forger, 7, False, {"model_id": LONG}),
        (robot, 1, True, {}),
        (forger, 8, False, {"frame_id": "f" * 1_000_000}),
        (robot, 2, True, {}),
        (forger, 3, True, {"stamp": past, **forged_frame}),  # below UINT64_MAX: a restart
        (forger, 10**12, True, {"preprocess_ms": 3e38, "head_dropped_frames": 7, **forged_frame}),  # a jump
        (robot, 5, True, {}),  # 3 and 4 missed
        (forger, 9, False, {"model_id": "\x1b[2J\n" * 2000}),
        (robot, 6, True, {}),
    ]  # fmt: skip
    log = tmp_path / "tail.log"
    with node_process("tail_node", "tail.yaml", tail_params(exported_head), ros_env, log) as tail:
        camera.spin_until(
            lambda: robot.get_subscription_count() >= 1 and forger.get_subscription_count() >= 1,
            "the tail to subscribe",
        )
        for publisher, sequence, served, fields in plan:
            send(publisher, sequence, served, **fields)
        camera.spin_until(lambda: camera.counter("/tail", "frames") == 8, "the tail's counters")
        camera.spin_for(1.5)  # a summary line or two after the last frame
        assert tail.poll() is None, log.read_text()[-5000:]
    forger_node.destroy_node()

    assert len(camera.stats) == len(camera.detections) == 8
    robot_stats = [s for s in camera.stats if s.header.frame_id != FORGED_FRAME]
    figures = [(s.tail_missed_frames, s.tail_rejected, round(s.transport_ms, 1)) for s in robot_stats]
    print(f"\nrobot frames (missed, rejected, transport ms): {figures}")
    assert [s.tail_missed_frames for s in robot_stats] == [0, 0, 0, 2, 2]
    assert [s.tail_rejected for s in robot_stats] == [0, 2, 3, 3, 4]
    assert [s.head_dropped_frames for s in robot_stats] == [0, 1, 2, 0, 1]
    for s in robot_stats:
        assert -SKEW_TOLERANCE_MS <= s.transport_ms <= MAX_LATENCY_MS
        assert 0.0 <= s.end_to_end_ms <= MAX_LATENCY_MS
    forged_stats = [s for s in camera.stats if s.header.frame_id == FORGED_FRAME]
    assert len(forged_stats) == 3
    assert all(math.isnan(s.end_to_end_ms) or math.isnan(s.preprocess_ms) for s in forged_stats)

    counters = camera.diagnostics.counters["/tail"]
    print(f"tail counters: {counters}")
    expected = {
        "frames": 8, "rejected": 4, "rejected_model": 2, "rejected_header": 1, "rejected_unknown_codec": 1,
        "missed_frames": 2, "sequence_jumps": 1, "sequence_restarts": 1, "senders": 2,
        "implausible_times": 3, "head_dropped_frames": 1 + 7, "failed": 0, "dropped_frames": 0,
    }  # fmt: skip
    assert {k: counters.get(k) for k in expected} == expected

    lines = log.read_text().splitlines()
    longest = max(lines, key=len)
    print(f"tail log: {len(lines)} lines, the longest {len(longest)} characters")
    assert len(longest) <= LOG_LINE_LIMIT, longest[:300]
    assert not any("\x1b" in line for line in lines)
    assert any("rejected a bottleneck (unknown_codec" in line and "\\x1b[2J\\n" in line for line in lines)
    assert any("(1000000 characters)" in line and "rejected a bottleneck (model" in line for line in lines)
    means = [float(m) for m in re.findall(r"transport_ms (\S+?)/", log.read_text())]
    assert means and all(abs(m) <= MAX_LATENCY_MS for m in means), means
