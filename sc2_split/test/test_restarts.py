"""Either node can die (kill -9) while frames flow and be started again: the other one carries on
untouched, detections resume, and the tail's counts stay sane when a new head numbers its
bottlenecks from 0 again.

Long: about 30 s on 2 idle CPU cores (two tail and two head start-ups), up to 90 s on busy ones."""

import signal
from pathlib import Path

from sc2_split.testing.node_process import node_process
from split_fixtures import Camera, head_params, tail_params

# Frames flowing while the killed node is down.
DOWN_S = 2.0


def detections_since(camera: Camera, sent_before: int) -> int:
    """Detections of frames the camera sent after it had sent `sent_before` frames."""
    late = set(list(camera.sent)[sent_before:])
    return sum((d.header.stamp.sec, d.header.stamp.nanosec) in late for d in camera.detections)


def test_tail_killed_and_restarted_while_frames_flow(
    exported_head: dict[str, str], camera: Camera, ros_env: dict[str, str], tmp_path: Path
) -> None:
    head_args = ("head_node", "head.yaml", head_params(exported_head), ros_env)
    tail_args = ("tail_node", "tail.yaml", tail_params(exported_head), ros_env)
    with node_process(*head_args, tmp_path / "head.log") as head:
        with node_process(*tail_args, tmp_path / "tail.log") as tail:
            camera.spin_until(lambda: camera.image_pub.get_subscription_count() >= 1, "the head to subscribe")
            camera.sending = True
            camera.spin_until(lambda: len(camera.detections) >= 2, "detections")
            tail.send_signal(signal.SIGKILL)
            assert tail.wait(timeout=10) == -signal.SIGKILL
        camera.spin_for(DOWN_S)
        encoded = camera.counter("/head", "encoded_frames")
        sent = len(camera.sent)
        with node_process(*tail_args, tmp_path / "tail_again.log") as tail_again:
            camera.spin_until(lambda: detections_since(camera, sent) >= 2, "detections from the new tail")
            camera.spin_until(lambda: camera.counter("/tail", "frames") >= 2, "the new tail's counters")
            assert tail_again.poll() is None
        assert head.poll() is None, (tmp_path / "head.log").read_text()
        camera.spin_until(lambda: camera.counter("/head", "encoded_frames") > encoded, "the head's counters")
    head_counters = camera.diagnostics.counters["/head"]
    print(f"\nhead counters: {head_counters}\nnew tail counters: {camera.diagnostics.counters['/tail']}")
    assert head_counters["failed_frames"] == 0 and camera.counter("/tail", "rejected") == 0


def test_head_killed_and_restarted_while_frames_flow(
    exported_head: dict[str, str], camera: Camera, ros_env: dict[str, str], tmp_path: Path
) -> None:
    head_args = ("head_node", "head.yaml", head_params(exported_head), ros_env)
    tail_args = ("tail_node", "tail.yaml", tail_params(exported_head), ros_env)
    with node_process(*tail_args, tmp_path / "tail.log") as tail:
        with node_process(*head_args, tmp_path / "head.log") as head:
            camera.spin_until(lambda: camera.image_pub.get_subscription_count() >= 1, "the head to subscribe")
            camera.sending = True
            camera.spin_until(lambda: len(camera.detections) >= 2, "detections")
            camera.spin_until(lambda: camera.counter("/tail", "frames") >= 2, "the tail's counters")
            head.send_signal(signal.SIGKILL)
            assert head.wait(timeout=10) == -signal.SIGKILL
        old_bottlenecks = len(camera.bottlenecks)
        last_sequence = camera.bottlenecks[-1].sequence
        sent = len(camera.sent)
        camera.spin_for(DOWN_S)
        missed = camera.counter("/tail", "missed_frames")  # published since the old head's last bottleneck
        with node_process(*head_args, tmp_path / "head_again.log"):
            camera.spin_until(lambda: detections_since(camera, sent) >= 2, "detections after the new head")
            frames = camera.counter("/tail", "frames")
            camera.spin_until(lambda: camera.counter("/tail", "frames") > frames, "the tail's counters")
        assert tail.poll() is None, (tmp_path / "tail.log").read_text()
        restarted = camera.bottlenecks[old_bottlenecks].sequence
    tail_counters = camera.diagnostics.counters["/tail"]
    missed_since = tail_counters["missed_frames"] - missed
    print(
        f"\nold head's last sequence {last_sequence}, new head's first {restarted}; tail missed "
        f"{missed_since} while the camera sent {len(camera.sent) - sent} frames"
        f"\ntail counters: {tail_counters}"
    )
    # The new head numbers from 0 again; the tail takes the jump back as a restart, not as missed frames.
    assert restarted < last_sequence
    assert missed_since <= len(camera.sent) - sent
    assert tail_counters["failed"] == 0 and tail_counters["rejected"] == 0
