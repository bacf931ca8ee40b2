"""`bag_tool record` keeps what the split nodes send, byte for byte, in a bag that rosbag2's readers
open; played into a fresh tail node, or decoded offline by `bag_tool tail`, that bag gives the
detections the live tail gave."""

import json
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from ament_index_python.packages import get_package_prefix
from builtin_interfaces.msg import Time
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from rclpy.signals import SignalHandlerOptions
from rosbags.highlevel import AnyReader
from sc2_split.ros.bag import read_messages
from sc2_split.ros.bag_tool import main as bag_tool_main
from sc2_split.ros.image_conversion import rgb_to_image
from sc2_split.ros.topics import RESULTS_QOS, camera_qos
from sc2_split.testing.node_process import node_process
from sensor_msgs.msg import Image
from split_fixtures import FRAME_ID, HEIGHT, WIDTH, Camera
from std_msgs.msg import Header, String
from vision_msgs.msg import Detection2DArray

from sc2_split_msgs.msg import Bottleneck

FRAMES = 5
MAX_DETECTIONS = 20
BAG_TOOL = str(Path(get_package_prefix("sc2_split")) / "lib" / "sc2_split" / "bag_tool")


def start_bag_tool(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen([BAG_TOOL, *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def finished(process: subprocess.Popen, log: Path) -> None:
    assert process.wait(timeout=60) == 0, f"bag_tool exited with {process.returncode}:\n{log.read_text()}"


def bag_messages(bag: Path, topic: str, msg_type: type) -> list:
    return [deserialize_message(m.data, msg_type) for m in read_messages(bag, [topic])]


def x1y1x2y2(array: Detection2DArray) -> np.ndarray:
    return np.array(
        [
            [
                c.x - d.bbox.size_x / 2,
                c.y - d.bbox.size_y / 2,
                c.x + d.bbox.size_x / 2,
                c.y + d.bbox.size_y / 2,
            ]
            for d in array.detections
            for c in [d.bbox.center.position]
        ]
    ).reshape(-1, 4)


def labels(array: Detection2DArray) -> list[int]:
    return [int(d.results[0].hypothesis.class_id) for d in array.detections]


def scores(array: Detection2DArray) -> list[float]:
    return [d.results[0].hypothesis.score for d in array.detections]


def assert_same_detections(expected: Detection2DArray, actual: Detection2DArray) -> None:
    assert actual.header == expected.header
    assert labels(actual) == labels(expected)
    np.testing.assert_allclose(x1y1x2y2(actual), x1y1x2y2(expected), atol=1e-4)
    np.testing.assert_allclose(scores(actual), scores(expected), atol=1e-4)


def quick_tail_config(config: Path, out: Path) -> Path:
    """The config with 100 region proposals instead of 1000: with random weights the box head, which
    runs once per proposal, takes most of the tail's time. Same file name, so the same model id."""
    document = yaml.safe_load(config.read_text())
    document["model"]["kwargs"].update(rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=100)
    out.mkdir()
    (out / config.name).write_text(yaml.safe_dump(document))
    return out / config.name


def test_recorded_bag_replays_and_decodes_offline_to_the_live_detections(
    exported_head: dict[str, str],
    camera: Camera,
    ros_env: dict[str, str],
    tmp_path: Path,
) -> None:
    bag = tmp_path / "live"
    head_overrides = {
        "metadata_file_path": exported_head["metadata_file_path"],
        "model_file_path": exported_head["model_file_path"],
        "qos_reliability": "reliable",
    }
    tail_overrides = {
        "model_config": quick_tail_config(Path(exported_head["model_config"]), tmp_path / "config"),
        "checkpoint": exported_head["checkpoint"],
        "score_threshold": 0.0,  # random weights: every class scores about 1/91
        "max_detections": MAX_DETECTIONS,
    }
    # The replay goes to a tail of its own DDS domain, which has never heard the live nodes.
    replay_env = {**ros_env, "ROS_DOMAIN_ID": str(int(ros_env["ROS_DOMAIN_ID"]) % 101 + 1)}
    logs = {name: tmp_path / f"{name}.log" for name in ("head", "tail", "replay_tail", "record", "play")}
    replay_context = Context()
    rclpy.init(
        context=replay_context,
        domain_id=int(replay_env["ROS_DOMAIN_ID"]),
        signal_handler_options=SignalHandlerOptions.NO,
    )
    with ExitStack() as stack:
        stack.callback(replay_context.try_shutdown)
        stack.enter_context(node_process("head_node", "head.yaml", head_overrides, ros_env, logs["head"]))
        stack.enter_context(node_process("tail_node", "tail.yaml", tail_overrides, ros_env, logs["tail"]))
        stack.enter_context(
            node_process("tail_node", "tail.yaml", tail_overrides, replay_env, logs["replay_tail"])
        )
        record_args = ["record", "-o", str(bag), "--count", str(2 * FRAMES), "/bottleneck", "/detections"]
        recorder = start_bag_tool(record_args, ros_env, logs["record"])
        stack.callback(recorder.kill)

        # Frames one at a time, each once the last one's detections are out: nothing is dropped anywhere.
        image_pub = camera.node.create_publisher(Image, "image", camera_qos("reliable"))
        camera.spin_until(
            lambda: (
                image_pub.get_subscription_count() >= 1
                and camera.node.count_subscribers("/bottleneck") >= 3  # tail, recorder, camera
                and camera.node.count_subscribers("/detections") >= 2
            ),  # recorder, camera
            "the head, the tail and the recorder",
        )
        # The graph shows the recorder's readers before every writer has matched them, and a message
        # published in between never reaches the recorder: let the head's and the tail's writers match.
        settled = time.monotonic() + 2.0
        camera.spin_until(lambda: time.monotonic() > settled, "discovery to settle")
        for i in range(FRAMES):
            rgb = camera.rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            image_pub.publish(rgb_to_image(rgb, Header(stamp=Time(sec=1000 + i), frame_id=FRAME_ID)))
            camera.spin_until(lambda i=i: len(camera.detections) > i, f"the detections of frame {i}")
        finished(recorder, logs["record"])

        # (c) The bag holds what was sent, its metadata is of the version Humble's rosbag2 writes, and
        # the rosbag2 reader of `rosbags` opens it with no type but those whose definitions it carries.
        metadata = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        assert metadata["version"] == 5 and metadata["storage_identifier"] == "mcap"
        live_bottlenecks = bag_messages(bag, "/bottleneck", Bottleneck)
        live = bag_messages(bag, "/detections", Detection2DArray)
        assert live_bottlenecks == camera.bottlenecks and live == camera.detections
        assert [d.header.stamp.sec for d in live] == list(range(1000, 1000 + FRAMES))
        with AnyReader([bag]) as reader:
            topics = {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
            assert topics == {
                "/bottleneck": ("sc2_split_msgs/msg/Bottleneck", FRAMES),
                "/detections": ("vision_msgs/msg/Detection2DArray", FRAMES),
            }
            read = [
                reader.deserialize(raw, c.msgtype)
                for c, _, raw in reader.messages()
                if c.topic == "/bottleneck"
            ]
        assert [(m.header.stamp.sec, m.sequence, bytes(m.data)) for m in read] == [
            (m.header.stamp.sec, m.sequence, bytes(m.data)) for m in live_bottlenecks
        ]

        # (b) Played into the fresh tail, the bottlenecks give the live detections again.
        replay = Camera(replay_context)
        replay.node.destroy_subscription(replay.bottleneck_sub)  # the replay tail is the only reader
        stack.callback(replay.node.destroy_node)
        replay.spin_until(lambda: bool(replay.label_info), "the replay tail")
        player = start_bag_tool(
            ["play", str(bag), "--topics", "/bottleneck", "--rate", "0.5"], replay_env, logs["play"]
        )
        stack.callback(player.kill)
        replay.spin_until(lambda: len(replay.detections) >= FRAMES, "the replayed detections")
        finished(player, logs["play"])
        for expected, actual in zip(live, replay.detections, strict=True):
            assert_same_detections(expected, actual)

    # (a) The offline tail decodes the recorded bottlenecks into the recorded detections.
    jsonl, detections_bag = tmp_path / "offline.jsonl", tmp_path / "offline"
    options = [f"--{name.replace('_', '-')}={value}" for name, value in tail_overrides.items()]
    assert (
        bag_tool_main(["tail", str(bag), *options, f"--jsonl={jsonl}", f"--output-bag={detections_bag}"]) == 0
    )
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(lines) == FRAMES
    for expected, line in zip(live, lines, strict=True):
        assert line["stamp"] == {"sec": expected.header.stamp.sec, "nanosec": expected.header.stamp.nanosec}
        assert line["frame_id"] == FRAME_ID and line["labels"] == labels(expected)
        np.testing.assert_allclose(line["boxes"], x1y1x2y2(expected), atol=1e-4)
        np.testing.assert_allclose(line["scores"], scores(expected), atol=1e-4)
    offline = bag_messages(detections_bag, "/detections", Detection2DArray)
    for expected, actual in zip(live, offline, strict=True):
        assert_same_detections(expected, actual)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_recorder_stopped_by_a_signal_closes_a_complete_bag(
    stop: signal.Signals, ros_env: dict[str, str], tmp_path: Path
) -> None:
    bag, log = tmp_path / "chatter", tmp_path / "record.log"
    context = Context()
    rclpy.init(
        context=context,
        domain_id=int(ros_env["ROS_DOMAIN_ID"]),
        signal_handler_options=SignalHandlerOptions.NO,
    )
    node = Node("talker", context=context)
    recorder = start_bag_tool(["record", "-o", str(bag), "chatter"], ros_env, log)
    try:
        publisher = node.create_publisher(String, "chatter", RESULTS_QOS)
        deadline = time.monotonic() + 30
        while publisher.get_subscription_count() == 0:
            assert time.monotonic() < deadline, f"the recorder did not subscribe:\n{log.read_text()}"
            time.sleep(0.05)
        sent = [String(data=f"message {i}") for i in range(3)]
        for msg in sent:
            publisher.publish(msg)
        assert publisher.wait_for_all_acked(Duration(seconds=10))
        time.sleep(0.5)  # acknowledged by the recorder's reader; now also taken and written
        recorder.send_signal(stop)
        finished(recorder, log)
    finally:
        recorder.kill()
        node.destroy_node()
        context.try_shutdown()
    assert bag_messages(bag, "/chatter", String) == sent
    with AnyReader([bag]) as reader:
        assert [(c.topic, c.msgtype, c.msgcount) for c in reader.connections] == [
            ("/chatter", "std_msgs/msg/String", len(sent))
        ]
