"""BagWriter, without nodes: the messages it writes, nested types of any installed package included,
read back through rosbags from the definitions the bag carries; its metadata.yaml is version 5 as
Humble's rosbag2 writes it; the player reads back offered QoS of Humble's and of Jazzy's form."""

from pathlib import Path

import pytest
import yaml
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
from rclpy.serialization import serialize_message
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import WriterError
from sc2_split.ros.bag import BagWriter, read_messages, recorded_offers
from sc2_split.ros.topics import BOTTLENECK_QOS, LABEL_INFO_QOS, RESULTS_QOS
from std_msgs.msg import Header, String
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from sc2_split_msgs.msg import Bottleneck


def detections() -> Detection2DArray:
    header = Header(frame_id="camera_optical_frame")
    header.stamp.sec = 7
    detection = Detection2D(header=header, id="a")
    detection.bbox.center.position.x, detection.bbox.size_y = 12.5, 4.0
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = "3", 0.75
    detection.results = [hypothesis]
    return Detection2DArray(header=header, detections=[detection])


def metadata(bag: Path) -> dict:
    return yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


def test_messages_of_nested_types_read_back_through_rosbags(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bottleneck = Bottleneck(model_id="demo@0123", codec="entropy", shape=[1, 2, 3], chunk_sizes=[2, 1])
    bottleneck.data = b"\x01\x02\x03"
    sent = {  # topic: (type, QoS, message)
        "/bottleneck": ("sc2_split_msgs/msg/Bottleneck", BOTTLENECK_QOS, bottleneck),
        "/detections": ("vision_msgs/msg/Detection2DArray", RESULTS_QOS, detections()),
        "/chatter": ("std_msgs/msg/String", LABEL_INFO_QOS, String(data="hi")),
    }
    # Serialized once: rclpy leaves CDR's alignment padding uninitialized, so two serializations of one
    # message can differ in those bytes.
    written = [(topic, kind, qos, serialize_message(msg)) for topic, (kind, qos, msg) in sent.items()]
    with BagWriter(bag) as writer:
        for i, (topic, type_name, qos, data) in enumerate(written):
            writer.write(writer.add_topic(topic, type_name, [qos]), data, 1000 + i)

    assert [(m.topic, m.log_time, m.data) for m in read_messages(bag)] == [
        (topic, 1000 + i, data) for i, (topic, _, _, data) in enumerate(written)
    ]
    with AnyReader([bag]) as reader:
        read = {c.topic: reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()}
    assert (read["/bottleneck"].model_id, read["/bottleneck"].data.tolist()) == ("demo@0123", [1, 2, 3])
    assert list(read["/bottleneck"].chunk_sizes) == [2, 1]
    (detection,) = read["/detections"].detections
    assert (detection.header.stamp.sec, detection.id, detection.bbox.center.position.x) == (7, "a", 12.5)
    assert (detection.results[0].hypothesis.class_id, detection.results[0].hypothesis.score) == ("3", 0.75)
    assert read["/chatter"].data == "hi"


def test_metadata_is_version_5_with_humble_qos_and_no_later_fields(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        connection = writer.add_topic("/chatter", "std_msgs/msg/String", [LABEL_INFO_QOS, RESULTS_QOS])
        writer.write(connection, serialize_message(String(data="hi")), 5_000)
    info = metadata(bag)
    assert info["version"] == 5 and info["storage_identifier"] == "mcap" and info["message_count"] == 1
    assert "custom_data" not in info and "ros_distro" not in info
    (topic,) = info["topics_with_message_count"]
    assert topic["message_count"] == 1 and "type_description_hash" not in topic["topic_metadata"]
    offers = yaml.safe_load(topic["topic_metadata"]["offered_qos_profiles"])
    assert [(p["reliability"], p["durability"], p["depth"]) for p in offers] == [
        (1, 1, LABEL_INFO_QOS.depth),  # reliable, transient local, as integers (Humble's form)
        (1, 2, RESULTS_QOS.depth),  # reliable, volatile
    ]
    assert [Path(f["path"]).name for f in info["files"]] == info["relative_file_paths"]
    assert info["starting_time"]["nanoseconds_since_epoch"] == 5_000


def test_an_empty_bag_starts_at_zero_and_opens(tmp_path: Path) -> None:
    bag = tmp_path / "empty"
    with BagWriter(bag):
        pass
    info = metadata(bag)
    assert (info["version"], info["message_count"], info["starting_time"]["nanoseconds_since_epoch"]) == (
        5,
        0,
        0,
    )
    with AnyReader([bag]) as reader:
        assert reader.connections == [] and list(reader.messages()) == []


def test_the_writer_refuses_a_bag_that_exists(tmp_path: Path) -> None:
    (tmp_path / "run1").mkdir()
    with pytest.raises(WriterError, match="exists"):
        BagWriter(tmp_path / "run1")


# One publisher reliable and transient local, one best effort and volatile, as each rosbag2 writes it.
HUMBLE_QOS = """- {history: 1, depth: 1, reliability: 1, durability: 1, deadline: {sec: 0, nsec: 0},
  lifespan: {sec: 0, nsec: 0}, liveliness: 1, liveliness_lease_duration: {sec: 0, nsec: 0},
  avoid_ros_namespace_conventions: false}
- {history: 1, depth: 5, reliability: 2, durability: 2, deadline: {sec: 0, nsec: 0},
  lifespan: {sec: 0, nsec: 0}, liveliness: 1, liveliness_lease_duration: {sec: 0, nsec: 0},
  avoid_ros_namespace_conventions: false}"""
JAZZY_QOS = """- {history: keep_last, depth: 1, reliability: reliable, durability: transient_local,
  deadline: {sec: 0, nsec: 0}, lifespan: {sec: 0, nsec: 0}, liveliness: automatic,
  liveliness_lease_duration: {sec: 0, nsec: 0}, avoid_ros_namespace_conventions: false}
- {history: keep_last, depth: 5, reliability: best_effort, durability: volatile,
  deadline: {sec: 0, nsec: 0}, lifespan: {sec: 0, nsec: 0}, liveliness: automatic,
  liveliness_lease_duration: {sec: 0, nsec: 0}, avoid_ros_namespace_conventions: false}"""


@pytest.mark.parametrize("offered", [HUMBLE_QOS, JAZZY_QOS], ids=["humble", "jazzy"])
def test_the_player_reads_offered_qos_as_humble_and_jazzy_write_it(offered: str) -> None:
    assert recorded_offers(offered) == [
        (ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL),
        (ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE),
    ]
    assert recorded_offers("") == []


def test_a_missing_or_damaged_bag_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from sc2_split.ros.bag_tool import main

    damaged = tmp_path / "damaged"
    with BagWriter(damaged) as writer:
        writer.write(writer.add_topic("/chatter", "std_msgs/msg/String", [RESULTS_QOS]), b"x" * 64, 1)
    (mcap,) = damaged.glob("*.mcap")
    mcap.write_bytes(mcap.read_bytes()[:40] + bytes(200))
    no_yaml = tmp_path / "no_yaml"
    no_yaml.mkdir()
    for bag, error in ((tmp_path / "absent", "no bag at"), (no_yaml, "is not a rosbag2 bag"), (damaged, "")):
        assert main(["play", str(bag)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("bag_tool play: ") and error in err, err


def test_the_offline_tail_counts_recorded_messages_that_are_no_bottleneck(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from sc2_split.ros.bag_tool import main

    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        connection = writer.add_topic("/bottleneck", "sc2_split_msgs/msg/Bottleneck", [BOTTLENECK_QOS])
        writer.write(connection, b"\x00\x01\x00\x00" + b"\xff" * 12, 1)  # CDR header, then garbage
        writer.write(connection, serialize_message(Bottleneck(model_id="x" * 100_000)), 2)
    assert main(["tail", str(bag), "--jsonl", str(tmp_path / "out.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "0 bottlenecks of /bottleneck decoded" in err
    assert "rejected 1 (corrupt)" in err and "rejected 1 (model)" in err and "(100000 characters)" in err
