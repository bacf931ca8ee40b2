"""rosbag2 bags without rosbag2: record topics as serialized CDR, read them back, play them.

A bag is what rosbag2's MCAP storage plugin writes (Humble and newer), so that `ros2 bag info|play`,
Foxglove and rosbags open it: a directory holding an MCAP file (profile `ros2`, one schema per type
with its full `ros2msg` definition, one `cdr` channel per topic with its publishers' offered QoS) and
`metadata.yaml`. rosbags writes both, with the definitions of the installed message packages; the
metadata is then set to version 5, which Humble's rosbag2 reads as every later one does. Each
message's bytes are kept as they arrived, logged at their receipt on the node's clock. No torch
here: recording and playing run on the robot.
"""

import importlib
import struct
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import yaml
from ament_index_python.packages import get_package_share_directory
from mcap.exceptions import McapError
from mcap.reader import make_reader
from rclpy.duration import Duration
from rclpy.expand_topic_name import expand_topic_name
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import (
    Connection,
    Nodetype,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys import get_types_from_msg, get_typestore
from rosbags.typesys.stores import Stores, Typestore

# Humble's rosbag2 writes version 5 and reads no field of a later one; every later rosbag2 (and
# rosbags) still reads it. rosbags writes version 8, whose fields past 5 are these:
METADATA_VERSION = 5
_FIELDS_AFTER_VERSION_5 = ("custom_data", "ros_distro")
_TOPIC_FIELDS_AFTER_VERSION_5 = ("type_description_hash",)
# Reader history of the recorder: room for bursts while a message is written.
RECORD_DEPTH = 100
# Writer history of the player: rosbag2's (rclcpp's default QoS depth).
PLAY_DEPTH = 10
DISCOVERY_PERIOD_S = 0.1
ACK_TIMEOUT_S = 10.0


def message_class(type_name: str) -> type:
    """The Python class of a message type named `pkg/msg/Type`."""
    package, name = _package_and_name(type_name)
    return getattr(importlib.import_module(f"{package}.msg"), name)


def adapted_qos(offers: Collection[tuple[ReliabilityPolicy, DurabilityPolicy]], depth: int) -> QoSProfile:
    """rosbag2's rule: reliable only if every publisher is, transient local only if every one is. The
    recorder then matches every publisher, and the player every subscriber that those publishers had."""
    reliable = all(r == ReliabilityPolicy.RELIABLE for r, _ in offers)
    latched = bool(offers) and all(d == DurabilityPolicy.TRANSIENT_LOCAL for _, d in offers)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def recorded_offers(offered_qos_profiles: str) -> list[tuple[ReliabilityPolicy, DurabilityPolicy]]:
    """Reliability and durability of each recorded publisher, from rosbag2's YAML of any version."""
    return [
        (ReliabilityPolicy(q.reliability.value), DurabilityPolicy(q.durability.value))
        for q in parse_qos(offered_qos_profiles)
    ]


class BagWriter:
    """A bag being written (rosbags' rosbag2 writer, MCAP storage); `metadata.yaml` follows on close."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Uncompressed, as rosbag2 writes by default: coded bottlenecks would not shrink anyway. Like
        # rosbag2, it refuses a path that exists.
        self._writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._types = get_typestore(Stores.EMPTY)

    def add_topic(self, topic: str, type_name: str, offered: Collection[QoSProfile]) -> Connection:
        """Registers a topic (its type's definition from the installed packages) and returns its
        connection, offered by publishers of these QoS profiles."""
        _register_type(self._types, type_name)
        return self._writer.add_connection(
            topic, type_name, typestore=self._types, offered_qos_profiles=[_bag_qos(p) for p in offered]
        )

    def write(self, connection: Connection, data: bytes, log_time_ns: int) -> None:
        self._writer.write(connection, log_time_ns, data)

    def close(self) -> None:
        """Writes the MCAP summary and `metadata.yaml` (what rosbag2 opens a bag directory by)."""
        self._writer.close()
        path = self.path / "metadata.yaml"
        document = yaml.safe_load(path.read_text())
        info = document["rosbag2_bagfile_information"]
        info["version"] = METADATA_VERSION
        for name in _FIELDS_AFTER_VERSION_5:
            info.pop(name, None)
        for topic in info["topics_with_message_count"]:
            for name in _TOPIC_FIELDS_AFTER_VERSION_5:
                topic["topic_metadata"].pop(name, None)
        if not info["message_count"]:  # rosbags' start of an empty bag is its "none yet" value
            for span in (info, *info["files"]):
                span["starting_time"]["nanoseconds_since_epoch"] = 0
        path.write_text(yaml.safe_dump(document, sort_keys=False))

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True)
class BagTopic:
    name: str
    type_name: str
    offered_qos_profiles: str  # rosbag2's YAML, empty where the writer did not know


@dataclass(frozen=True)
class BagMessage:
    topic: str
    type_name: str
    log_time: int  # ns: when the recorder received it
    data: bytes  # serialized CDR


class BagError(ValueError):
    """A bag that cannot be read: missing, not a rosbag2 directory, or a damaged MCAP file."""


# What a damaged MCAP file raises from the reader.
_DAMAGED = (McapError, EOFError, struct.error, UnicodeDecodeError, ValueError)


def storage_files(bag: Path) -> list[Path]:
    """The MCAP files of a bag directory in recording order, as its metadata.yaml lists them, or a
    single .mcap file as given."""
    if not bag.exists():
        raise BagError(f"no bag at {bag}")
    if not bag.is_dir():
        return [bag]
    try:
        info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        files = [bag / Path(name).name for name in info["relative_file_paths"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise BagError(f"{bag} is not a rosbag2 bag: its metadata.yaml cannot be read ({exc!r})") from exc
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise BagError(f"{bag}: metadata.yaml lists files that are not there: {', '.join(missing)}")
    return files


def bag_topics(bag: Path) -> list[BagTopic]:
    topics = {}
    for path in storage_files(bag):
        with path.open("rb") as stream:
            try:
                summary = make_reader(stream).get_summary()
            except _DAMAGED as exc:
                raise BagError(f"{path} is not a readable MCAP file: {exc!r}") from exc
        if summary is None:
            raise BagError(f"{path} has no summary: its recording was not closed (`mcap recover` it)")
        for channel in summary.channels.values():
            type_name = summary.schemas[channel.schema_id].name
            qos = channel.metadata.get("offered_qos_profiles", "")
            topics[channel.topic] = BagTopic(channel.topic, type_name, qos)
    return list(topics.values())


def read_messages(bag: Path, topics: Collection[str] | None = None) -> Iterator[BagMessage]:
    """The bag's messages (all, or those of `topics`) in the order they were received."""
    for path in storage_files(bag):
        with path.open("rb") as stream:
            try:
                for schema, channel, message in make_reader(stream).iter_messages(topics=topics):
                    type_name = schema.name if schema is not None else ""
                    yield BagMessage(channel.topic, type_name, message.log_time, message.data)
            except _DAMAGED as exc:
                raise BagError(f"{path} is damaged: {exc!r}") from exc


class Recorder(Node):
    """Records topics as serialized bytes, never decoded nor re-encoded: exactly what rosbag2 stores.

    A topic is subscribed once a publisher of it shows up, with the QoS its publishers offer, so that
    the recorder can start before or after the nodes it records.
    """

    def __init__(self, writer: BagWriter, topics: Collection[str], max_messages: int = 0) -> None:
        super().__init__("bag_recorder")
        self.writer = writer
        self.max_messages = max_messages
        self.recorded = 0
        self._waiting = {expand_topic_name(t, self.get_name(), self.get_namespace()) for t in topics}
        self._discovery = self.create_timer(DISCOVERY_PERIOD_S, self.discover)
        self.get_logger().info(f"waiting for publishers of {', '.join(sorted(self._waiting))}")

    @property
    def finished(self) -> bool:
        return 0 < self.max_messages <= self.recorded

    def discover(self) -> None:
        types = dict(self.get_topic_names_and_types())
        for topic in sorted(self._waiting & types.keys()):
            offers = [info.qos_profile for info in self.get_publishers_info_by_topic(topic)]
            if not offers:
                continue  # only subscribers so far: their type may differ, and the publishers' QoS decides
            type_name, *others = types[topic]
            if others:
                self.get_logger().warning(f"{topic} has several types; recording {type_name}")
            connection = self.writer.add_topic(topic, type_name, offers)
            qos = adapted_qos([(q.reliability, q.durability) for q in offers], RECORD_DEPTH)
            self.create_subscription(
                message_class(type_name), topic, self._recorder_of(connection), qos, raw=True
            )
            self._waiting.discard(topic)
            self.get_logger().info(f"recording {topic} ({type_name})")
        if not self._waiting:
            self._discovery.cancel()

    def record(self, connection: Connection, data: bytes) -> None:
        if self.finished:
            return
        self.writer.write(connection, data, self.get_clock().now().nanoseconds)
        self.recorded += 1

    def _recorder_of(self, connection: Connection) -> Callable[[bytes], None]:
        return lambda data: self.record(connection, data)


def play(
    node: Node,
    bag: Path,
    topics: Collection[str] | None = None,
    rate: float = 1.0,
    wait_for_subscribers_s: float = 10.0,
) -> int:
    """Publishes the bag's messages (all, or those of `topics`) as recorded, serialized bytes, spaced as
    they were received divided by `rate`, and returns how many it published.

    It waits (at most `wait_for_subscribers_s`) until every topic has a subscriber, so that the first
    messages are not lost, and at the end until reliable subscribers have acknowledged them all.
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, not {rate}")
    available = {t.name: t for t in bag_topics(bag)}
    if missing := set(topics or ()) - available.keys():
        raise ValueError(f"{bag} has no topic {', '.join(sorted(missing))}; it has {', '.join(available)}")
    publishers = {
        name: node.create_publisher(
            message_class(t.type_name), name, adapted_qos(recorded_offers(t.offered_qos_profiles), PLAY_DEPTH)
        )
        for name, t in available.items()
        if topics is None or name in topics
    }
    deadline = time.monotonic() + wait_for_subscribers_s
    while not all(p.get_subscription_count() for p in publishers.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    if unheard := [name for name, p in publishers.items() if not p.get_subscription_count()]:
        node.get_logger().warning(f"no subscriber on {', '.join(unheard)}; playing anyway")

    started, first_ns, count = time.monotonic(), None, 0
    for message in read_messages(bag, publishers.keys()):
        first_ns = message.log_time if first_ns is None else first_ns
        due = started + (message.log_time - first_ns) / 1e9 / rate
        while (left := due - time.monotonic()) > 0 and node.context.ok():
            time.sleep(min(left, 0.1))
        if not node.context.ok():
            break
        publishers[message.topic].publish(message.data)
        count += 1
    if node.context.ok():
        for publisher in publishers.values():
            publisher.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
    return count


def _package_and_name(type_name: str) -> tuple[str, str]:
    parts = type_name.split("/")
    if len(parts) == 2 or (len(parts) == 3 and parts[1] == "msg"):
        return parts[0], parts[-1]
    raise ValueError(f"not a message type name (pkg/msg/Type): {type_name!r}")


def _register_type(types: Typestore, type_name: str) -> None:
    """Registers a message type and every type it holds, from the installed packages' .msg files (as
    rosbag2 finds definitions), so that the bag carries the definitions the nodes were built with."""
    if type_name in types.fielddefs:
        return
    package, name = _package_and_name(type_name)
    text = (Path(get_package_share_directory(package)) / "msg" / f"{name}.msg").read_text()
    definitions = get_types_from_msg(text, f"{package}/msg/{name}")
    types.register(definitions)
    for _, fields in definitions.values():
        for _, field_type in fields:
            while field_type[0] in (Nodetype.ARRAY, Nodetype.SEQUENCE):
                field_type = field_type[1][0]
            if field_type[0] == Nodetype.NAME:
                _register_type(types, field_type[1])


def _bag_qos(p: QoSProfile) -> Qos:
    def duration(d: Duration) -> QosTime:
        return QosTime(*divmod(d.nanoseconds, 10**9))

    return Qos(
        history=QosHistory(p.history.value),
        depth=p.depth,
        reliability=QosReliability(p.reliability.value),
        durability=QosDurability(p.durability.value),
        deadline=duration(p.deadline),
        lifespan=duration(p.lifespan),
        liveliness=QosLiveliness(p.liveliness.value),
        liveliness_lease_duration=duration(p.liveliness_lease_duration),
        avoid_ros_namespace_conventions=p.avoid_ros_namespace_conventions,
    )
