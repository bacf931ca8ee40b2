"""rosbag2 bags in MCAP without rosbag2: record topics as serialized CDR, read them back, play them.

A bag is what rosbag2's MCAP storage plugin writes (Humble and newer), so that `ros2 bag info|play`,
Foxglove and rosbags open it: a directory `<name>/` holding `<name>_0.mcap` and a version 5
`metadata.yaml`. In the file: profile `ros2`; one schema per type holding its full `ros2msg` definition;
one `cdr` channel per topic carrying its publishers' offered QoS; each message's bytes as they arrived,
logged at their receipt on the node's clock. No torch here: recording and playing run on the robot.
"""

import importlib
import re
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from ament_index_python.packages import get_package_share_directory
from mcap.reader import make_reader
from mcap.writer import CompressionType, Writer
from rclpy.duration import Duration
from rclpy.expand_topic_name import expand_topic_name
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import Subscription

# Humble's rosbag2 writes version 5; every later rosbag2 (and rosbags) still reads it.
METADATA_VERSION = 5
DEFINITION_SEPARATOR = "=" * 80
# Reader history of the recorder: room for bursts while a message is written.
RECORD_DEPTH = 100
# Writer history of the player: rosbag2's (rclcpp's default QoS depth).
PLAY_DEPTH = 10
DISCOVERY_PERIOD_S = 0.1
ACK_TIMEOUT_S = 10.0

# rosbag2's parse of the nested types of a .msg (rosbag2_cpp local_message_definition_source.cpp).
_MSG_FIELD_TYPE = re.compile(r"(?:^|\n)\s*([a-zA-Z0-9_/]+)(?:\[[^\]]*\])?\s+")
_PRIMITIVE_TYPES = frozenset(
    {"bool", "byte", "char", "float32", "float64", "string", "wstring"}
    | {f"{sign}int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)}
)
# rclpy passes message info (with the DDS source timestamp) to two-argument callbacks since Iron;
# Humble's rclpy never does, and its rosbag2 logs the receipt as publish time too.
_CALLBACKS_TAKE_MESSAGE_INFO = hasattr(Subscription, "CallbackType")


def message_class(type_name: str) -> type:
    """The Python class of a message type named `pkg/msg/Type`."""
    package, name = _package_and_name(type_name)
    return getattr(importlib.import_module(f"{package}.msg"), name)


def message_definition(type_name: str) -> str:
    """The full definition of a message type as rosbag2 stores it: its .msg text, then each nested type
    once (depth first, by name) after a line of 80 '=' and `MSG: pkg/Type`, read from the packages'
    share directories."""
    seen: set[str] = set()

    def with_dependencies(name: str) -> str:
        package, msg = _package_and_name(name)
        text = (Path(get_package_share_directory(package)) / "msg" / f"{msg}.msg").read_bytes().decode()
        for dependency in sorted(_dependencies(text, package)):
            if dependency not in seen:
                seen.add(dependency)
                text += f"\n{DEFINITION_SEPARATOR}\nMSG: {dependency}\n{with_dependencies(dependency)}"
        return text

    return with_dependencies(type_name)


def qos_profiles_yaml(profiles: Collection[QoSProfile]) -> str:
    """rosbag2's `offered_qos_profiles` in Humble's form (policies as integers), which later ones read."""
    return yaml.safe_dump(
        [
            {
                "history": p.history.value,
                "depth": p.depth,
                "reliability": p.reliability.value,
                "durability": p.durability.value,
                "deadline": _sec_nsec(p.deadline),
                "lifespan": _sec_nsec(p.lifespan),
                "liveliness": p.liveliness.value,
                "liveliness_lease_duration": _sec_nsec(p.liveliness_lease_duration),
                "avoid_ros_namespace_conventions": p.avoid_ros_namespace_conventions,
            }
            for p in profiles
        ],
        sort_keys=False,
    )


def recorded_offers(offered_qos_profiles: str) -> list[tuple[ReliabilityPolicy, DurabilityPolicy]]:
    """Reliability and durability of each recorded publisher: integers up to Iron, names from Jazzy on."""

    def policy(value: int | str, enum: type) -> Any:
        return enum(value) if isinstance(value, int) else enum[value.upper()]

    return [
        (policy(p["reliability"], ReliabilityPolicy), policy(p["durability"], DurabilityPolicy))
        for p in yaml.safe_load(offered_qos_profiles or "[]")
    ]


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


class BagWriter:
    """A bag being written: messages go to `<path>/<name>_0.mcap`, `metadata.yaml` follows on close."""

    def __init__(self, path: Path, library: str = "sc2_split bag_tool") -> None:
        if path.exists():
            raise FileExistsError(f"bag {path} already exists; rosbag2 never writes into one either")
        path.mkdir(parents=True)
        self.path = path
        self._file_name = f"{path.name}_0.mcap"
        self._stream = (path / self._file_name).open("wb")
        # Uncompressed, as rosbag2 writes by default: coded bottlenecks would not shrink anyway.
        self._writer = Writer(self._stream, compression=CompressionType.NONE)
        self._writer.start(profile="ros2", library=library)
        self._schema_ids: dict[str, int] = {}
        self._topics: dict[int, dict[str, str]] = {}
        self.counts: Counter[int] = Counter()
        self._first_ns: int | None = None
        self._last_ns = 0

    def add_topic(self, topic: str, type_name: str, offered_qos_profiles: str) -> int:
        """Registers a topic (and its type's definition, once) and returns its channel id."""
        if type_name not in self._schema_ids:
            definition = message_definition(type_name).encode()
            self._schema_ids[type_name] = self._writer.register_schema(type_name, "ros2msg", definition)
        channel = self._writer.register_channel(
            topic, "cdr", self._schema_ids[type_name], {"offered_qos_profiles": offered_qos_profiles}
        )
        self._topics[channel] = {
            "name": topic,
            "type": type_name,
            "serialization_format": "cdr",
            "offered_qos_profiles": offered_qos_profiles,
        }
        return channel

    def write(self, channel: int, data: bytes, log_time_ns: int, publish_time_ns: int) -> None:
        self._writer.add_message(channel, log_time=log_time_ns, data=data, publish_time=publish_time_ns)
        self.counts[channel] += 1
        self._first_ns = log_time_ns if self._first_ns is None else min(self._first_ns, log_time_ns)
        self._last_ns = max(self._last_ns, log_time_ns)

    def close(self) -> None:
        """Writes the MCAP summary, then `metadata.yaml` (what rosbag2 opens a bag directory by)."""
        self._writer.finish()
        self._stream.close()
        count = sum(self.counts.values())
        start_ns = self._first_ns or 0
        duration_ns = self._last_ns - start_ns if count else 0
        info = {
            "version": METADATA_VERSION,
            "storage_identifier": "mcap",
            **_time_span(start_ns, duration_ns),
            "message_count": count,
            "topics_with_message_count": [
                {"topic_metadata": metadata, "message_count": self.counts[channel]}
                for channel, metadata in self._topics.items()
            ],
            "compression_format": "",
            "compression_mode": "",
            "relative_file_paths": [self._file_name],
            "files": [{"path": self._file_name, **_time_span(start_ns, duration_ns), "message_count": count}],
        }
        metadata = yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False)
        (self.path / "metadata.yaml").write_text(metadata)

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
    publish_time: int  # ns: when it was sent, where the recorder knew, else its receipt
    data: bytes  # serialized CDR


def storage_files(bag: Path) -> list[Path]:
    """The MCAP files of a bag directory in recording order, as its metadata.yaml lists them, or a
    single .mcap file as given."""
    if not bag.is_dir():
        return [bag]
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    return [bag / Path(name).name for name in info["relative_file_paths"]]


def bag_topics(bag: Path) -> list[BagTopic]:
    topics = {}
    for path in storage_files(bag):
        with path.open("rb") as stream:
            summary = make_reader(stream).get_summary()
        if summary is None:
            raise ValueError(f"{path} has no summary: its recording was not closed (`mcap recover` it)")
        for channel in summary.channels.values():
            type_name = summary.schemas[channel.schema_id].name
            qos = channel.metadata.get("offered_qos_profiles", "")
            topics[channel.topic] = BagTopic(channel.topic, type_name, qos)
    return list(topics.values())


def read_messages(bag: Path, topics: Collection[str] | None = None) -> Iterator[BagMessage]:
    """The bag's messages (all, or those of `topics`) in the order they were received."""
    for path in storage_files(bag):
        with path.open("rb") as stream:
            for schema, channel, message in make_reader(stream).iter_messages(topics=topics):
                type_name = schema.name if schema is not None else ""
                yield BagMessage(
                    channel.topic, type_name, message.log_time, message.publish_time, message.data
                )


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
            channel = self.writer.add_topic(topic, type_name, qos_profiles_yaml(offers))
            qos = adapted_qos([(q.reliability, q.durability) for q in offers], RECORD_DEPTH)
            self.create_subscription(
                message_class(type_name), topic, self._recorder_of(channel), qos, raw=True
            )
            self._waiting.discard(topic)
            self.get_logger().info(f"recording {topic} ({type_name})")
        if not self._waiting:
            self._discovery.cancel()

    def record(self, channel: int, data: bytes, sent_ns: int | None) -> None:
        if self.finished:
            return
        received_ns = self.get_clock().now().nanoseconds
        self.writer.write(channel, data, received_ns, sent_ns or received_ns)
        self.recorded += 1

    def _recorder_of(self, channel: int) -> Callable[..., None]:
        if _CALLBACKS_TAKE_MESSAGE_INFO:
            return lambda data, info: self.record(channel, data, info["source_timestamp"])
        return lambda data: self.record(channel, data, None)


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


def _dependencies(text: str, package: str) -> set[str]:
    names = (m.group(1) for m in _MSG_FIELD_TYPE.finditer(text))
    return {n if "/" in n else f"{package}/{n}" for n in names if n not in _PRIMITIVE_TYPES}


def _time_span(start_ns: int, duration_ns: int) -> dict[str, dict[str, int]]:
    """Fresh dicts each time: shared ones would be written as YAML anchors, which rosbag2 never writes."""
    return {"starting_time": {"nanoseconds_since_epoch": start_ns}, "duration": {"nanoseconds": duration_ns}}


def _sec_nsec(duration: Duration) -> dict[str, int]:
    sec, nsec = divmod(duration.nanoseconds, 10**9)
    return {"sec": sec, "nsec": nsec}
