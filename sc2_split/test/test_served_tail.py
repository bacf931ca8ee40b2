"""The tail served by Triton (tail_server on the CPU) through the tail node in client mode: three
robots in namespaces get the detections the in-process tail gives for the same bottlenecks, batched
together; a malformed payload fails only its own frame, also alone in its batch; a server killed and
restarted mid-run costs counted frames, never the node."""

import signal
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from sc2_split.benchmarks.fleet import server_counters
from sc2_split.frames import CodedFrame
from sc2_split.ros.bottleneck_conversion import from_bottleneck
from sc2_split.ros.detections_conversion import to_detection_array
from sc2_split.serving.process import ServerPorts, kill_server
from sc2_split.serving.protocol import triton_model_name
from sc2_split.tail import TailPipeline
from sc2_split.testing.node_process import node_process
from served_fixtures import Robot, batch_counts, boxes_of, copy_bottleneck, record_bottlenecks, served_model
from split_fixtures import Camera, tail_params

MAX_DETECTIONS = 20
# Long enough for the frames that three robots send at once to meet in one batch.
QUEUE_DELAY_US = 300_000


def client_params(exported_head: dict[str, str], url: str, robots: list[str]) -> dict[str, object]:
    # Random weights score every class about equally: a zero threshold keeps their boxes. The server's
    # first frame compiles the entropy decoder (numba), seconds on 2 shared cores: a long timeout.
    return tail_params(
        exported_head, server_url=url, robots=f"[{','.join(robots)}]", score_threshold=0.0,
        metadata_file_path=exported_head["metadata_file_path"],
        max_detections=MAX_DETECTIONS, request_timeout=60.0,
    )  # fmt: skip


def wait_for_tail(camera: Camera, robots: list[Robot]) -> None:
    for robot in robots:
        camera.spin_until(lambda r=robot: r.publisher.get_subscription_count() >= 1, f"{robot.namespace} sub")
        camera.spin_until(lambda r=robot: bool(r.label_info), f"{robot.namespace}/label_info")


def send_round(camera: Camera, robots: list[Robot], frames: list, stamp_sec: int) -> list:
    """Each robot sends its frame at once; until every robot has its detections."""
    sent = [robot.publish(frame, stamp_sec) for robot, frame in zip(robots, frames, strict=True)]
    for robot, msg in zip(robots, sent, strict=True):
        camera.spin_until(lambda r=robot, m=msg: r.answered(m), f"{robot.namespace}'s detections")
    return sent


def test_three_robots_get_the_in_process_tails_detections_from_one_served_tail(
    exported_head: dict[str, str], camera: Camera, ros_env: dict[str, str], tmp_path: Path
) -> None:
    recorded = record_bottlenecks(exported_head, 3)
    names = ["robot1", "robot2", "robot3"]
    ports = ServerPorts.free()
    with ExitStack() as stack:
        stack.enter_context(
            served_model(exported_head, ports, ros_env, tmp_path / "server.log", QUEUE_DELAY_US)
        )
        params = client_params(exported_head, ports.url, names)
        tail = stack.enter_context(
            node_process("tail_node", "tail.yaml", params, ros_env, tmp_path / "tail.log")
        )
        robots = [Robot(camera, name) for name in names]
        wait_for_tail(camera, robots)
        frames_before, batches_before = batch_counts(ports)
        for i in range(3):  # each robot sends each recorded frame once, the three robots at once
            send_round(camera, robots, [recorded[(i + k) % 3] for k in range(3)], stamp_sec=10 + i)
        # Triton counts a request in its metrics after its answer has left.
        camera.spin_until(lambda: batch_counts(ports)[0] - frames_before >= 9, "the server's counts")
        frames, batches = batch_counts(ports)
        # Triton's statistics are readable too (PyTriton restricts them by default), and agree.
        statistics = server_counters(ports.url, triton_model_name(recorded[0].model_id))
        tail.send_signal(signal.SIGINT)
        assert tail.wait(timeout=30) == 0, (tmp_path / "tail.log").read_text()

    assert frames - frames_before == 9
    assert statistics["frames"] == frames
    assert sum(n for key, n in statistics.items() if key.startswith("batches/")) == batches
    assert batches - batches_before < 9, "no batch held frames of several robots"
    with TailPipeline.from_config(exported_head["model_config"], exported_head["checkpoint"]) as local:
        for robot in robots:
            assert len(robot.detections) == 3 and len(robot.stats) == 3
            for got in robot.detections:
                msg = robot.sent[(got.header.stamp.sec, got.header.stamp.nanosec)]
                frame: CodedFrame = from_bottleneck(msg)
                want = to_detection_array(msg.header, local(frame), 0.0, MAX_DETECTIONS)
                assert got.header.frame_id == robot.frame_id and len(got.detections) == MAX_DETECTIONS
                # Batched and single-frame convolutions round differently in the last bits.
                np.testing.assert_allclose(boxes_of(got), boxes_of(want), rtol=0, atol=1e-3)
            for stats in robot.stats:
                assert stats.header.frame_id == robot.frame_id and stats.model_id == recorded[0].model_id
                assert stats.end_to_end_ms >= stats.tail_ms > 0 and stats.payload_bytes > 0
            assert len(robot.label_info[0].class_map) == 90


def test_a_malformed_payload_fails_alone_and_a_server_restart_costs_only_counted_frames(
    exported_head: dict[str, str], camera: Camera, ros_env: dict[str, str], tmp_path: Path
) -> None:
    (good,) = record_bottlenecks(exported_head, 1)
    malformed = copy_bottleneck(good)
    malformed.data = malformed.data[:-10]
    names = ["robot1", "robot2"]
    ports = ServerPorts.free()
    server_log = tmp_path / "server.log"
    params = client_params(exported_head, ports.url, names)
    with ExitStack() as stack:
        server = stack.enter_context(served_model(exported_head, ports, ros_env, server_log, QUEUE_DELAY_US))
        tail_log = tmp_path / "tail.log"
        tail = stack.enter_context(node_process("tail_node", "tail.yaml", params, ros_env, tail_log))
        robots = [Robot(camera, name) for name in names]
        wait_for_tail(camera, robots)

        # robot1's truncated payload and robot2's frame in one batch: only robot1's frame fails.
        frames_before, batches_before = batch_counts(ports)
        robots[0].publish(malformed, 1)
        ok = robots[1].publish(good, 1)
        camera.spin_until(lambda: robots[1].answered(ok), "robot2's detections")
        camera.spin_until(lambda: camera.counter("/tail/robot1", "rejected_truncated") == 1, "the rejection")
        camera.spin_until(lambda: batch_counts(ports)[0] >= frames_before + 2, "the server's counts")
        assert batch_counts(ports) == (frames_before + 2, batches_before + 1)
        assert not robots[0].detections and camera.counter("/tail/robot2", "rejected") == 0

        # Alone in its batch, in which no frame then finds anything, it is still its own rejection, not
        # the batch's failure (PyTriton cannot pass an empty dimension: the outputs have a row at least).
        robots[0].publish(malformed, 2)
        camera.spin_until(lambda: camera.counter("/tail/robot1", "rejected_truncated") == 2, "the rejection")
        assert camera.counter("/tail/robot1", "lost") == 0

        # The server dies mid-run: every frame sent meanwhile is lost and counted, the node goes on.
        kill_server(server)
        for second in range(2, 6):
            for robot in robots:
                robot.publish(good, second)
            camera.spin_for(0.3)
        camera.spin_until(
            lambda: all(camera.counter(f"/tail/{n}", "lost") >= 1 for n in names), "the lost frames counted"
        )
        assert tail.poll() is None, tail_log.read_text()

        # The server is back on the same address: frames flow again, with no restart of the node.
        stack.enter_context(
            served_model(exported_head, ports, ros_env, tmp_path / "server2.log", QUEUE_DELAY_US)
        )
        for second in range(10, 20):  # a round at a time: the first may still meet a reconnecting channel
            sent = [robot.publish(good, second) for robot in robots]
            lost = camera.counter("/tail/robot2", "lost")
            camera.spin_until(
                lambda s=sent, lost=lost: (
                    all(r.answered(m) for r, m in zip(robots, s, strict=True))
                    or camera.counter("/tail/robot2", "lost") > lost
                ),
                "the round answered or lost",
            )
            if all(r.answered(m) for r, m in zip(robots, sent, strict=True)):
                break
        assert all(r.answered(m) for r, m in zip(robots, sent, strict=True)), (
            "no detections after the restart"
        )
        tail.send_signal(signal.SIGINT)
        assert tail.wait(timeout=30) == 0, tail_log.read_text()

    log = tail_log.read_text()
    assert "robot1: rejected a bottleneck (truncated, 1 so far)" in log, log
    assert "lost a frame (" in log, log
    lost = {n: camera.counter(f"/tail/{n}", "lost") for n in names}
    assert all(1 <= n <= 4 + 10 for n in lost.values()), lost


def test_robots_found_publishing_bottlenecks_are_served_up_to_max_robots(
    exported_head: dict[str, str], camera: Camera, ros_env: dict[str, str], tmp_path: Path
) -> None:
    (good,) = record_bottlenecks(exported_head, 1)
    ports = ServerPorts.free()
    params = client_params(exported_head, ports.url, ["robot1"]) | {
        "discover_robots": "true",
        "max_robots": 2,
    }
    tail_log = tmp_path / "tail.log"
    with ExitStack() as stack:
        stack.enter_context(served_model(exported_head, ports, ros_env, tmp_path / "server.log", 0))
        tail = stack.enter_context(node_process("tail_node", "tail.yaml", params, ros_env, tail_log))
        listed = Robot(camera, "robot1")
        wait_for_tail(camera, [listed])
        # robot2 starts publishing later: the tail finds it and serves it in its namespace.
        found = Robot(camera, "robot2")
        wait_for_tail(camera, [found])
        send_round(camera, [listed, found], [good, good], stamp_sec=1)
        # robot3 is one more than max_robots: found, logged, never served.
        refused = Robot(camera, "robot3")
        camera.spin_until(lambda: "not serving /robot3/bottleneck" in tail_log.read_text(), "the refusal")
        refused.publish(good, 2)
        camera.spin_for(2.0)
        assert not refused.label_info and not refused.detections
        assert refused.publisher.get_subscription_count() == 0
        tail.send_signal(signal.SIGINT)
        assert tail.wait(timeout=30) == 0, tail_log.read_text()

    log = tail_log.read_text()
    assert "serving robot2 (discovered /robot2/bottleneck), 2 robots" in log, log
    assert "robot1 (discovered" not in log, log
    assert [r.detections[0].header.frame_id for r in (listed, found)] == ["robot1_camera", "robot2_camera"]
