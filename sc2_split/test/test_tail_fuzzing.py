"""A tail node survives a flood of malformed bottlenecks: each one it reads is rejected and counted by
reason, none makes it fail or exit, its memory stays bounded, and a valid bottleneck afterwards still
gives detections. In-process, hypothesis checks that only PayloadError ever leaves the tail's
decoding of a message.

Long: about 30 s on 2 idle CPU cores (10 s of them sending the 10,000 messages), a few times
that on busy ones."""

import array
import copy
import math
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from codec_fixtures import lanes_mutations
from hypothesis import event, given, settings
from hypothesis import strategies as st
from rclpy.serialization import deserialize_message, serialize_message
from sc2_split.codecs import CODECS
from sc2_split.codecs.entropy import EntropyCodec
from sc2_split.codecs.payload import DEFAULT_MAX_BYTES, PayloadError
from sc2_split.ros.bottleneck_conversion import from_bottleneck
from sc2_split.ros.topics import BOTTLENECK_QOS
from sc2_split.tail import MAX_IMAGE_SIDE, TailPipeline
from sc2_split.testing.node_process import node_process
from sc2_split.testing.soak import process_rss_mb
from split_fixtures import Camera, tail_params

from sc2_split_msgs.msg import Bottleneck

MESSAGES = 10_000
SEED = 20240607
# Time between two malformed bottlenecks: about what the tail takes to refuse one, so that it reads
# most of them (it keeps the newest only; the rest count as missed).
PACE_S = 0.001
# Allowed growth of the tail's resident memory over the whole flood.
RSS_MARGIN_MB = 300.0
GEOMETRY = ("image_height", "image_width", "resized_height", "resized_width", "padded_height", "padded_width")
U32_MAX = 2**32 - 1
# Beyond the largest payload from_bottleneck accepts: refused before it is copied.
OVERSIZED_BYTES = DEFAULT_MAX_BYTES + 16

Mutation = Callable[[Bottleneck, np.random.Generator], None]


@pytest.fixture(scope="module")
def pipeline(exported_head: dict[str, str], valid: dict[str, Bottleneck]) -> TailPipeline:
    """The tail node's pipeline for the exported model, in this process."""
    pipeline = TailPipeline.from_config(exported_head["model_config"], exported_head["checkpoint"])
    assert pipeline.model_id == valid["entropy"].model_id
    return pipeline


def rejection(pipeline: TailPipeline, msg: Bottleneck) -> str | None:
    """The reason the tail node refuses `msg`, or None if it would serve it."""
    # As the tail receives it: DDS strings end at the first NUL, for one.
    received = deserialize_message(serialize_message(msg), Bottleneck)
    try:
        pipeline(from_bottleneck(received))
    except PayloadError as exc:
        return exc.reason
    return None


def _bytes(rng: np.random.Generator, size: int) -> array.array:
    return array.array("B", rng.integers(0, 256, size, dtype=np.uint8).tobytes())


def _pick(rng: np.random.Generator, choices: list) -> object:
    return choices[rng.integers(len(choices))]


def _text(rng: np.random.Generator, size: int) -> str:
    return "".join(chr(c) for c in rng.integers(1, 0x3000, size))


def truncated(msg: Bottleneck, rng: np.random.Generator) -> None:
    msg.data = msg.data[: rng.integers(0, len(msg.data))]


def padded(msg: Bottleneck, rng: np.random.Generator) -> None:
    msg.data = msg.data + _bytes(rng, rng.integers(1, 4096))


def random_bytes(msg: Bottleneck, rng: np.random.Generator) -> None:
    msg.data = _bytes(rng, rng.integers(0, 2 * len(msg.data)))


def flipped_entropy_bytes(msg: Bottleneck, rng: np.random.Generator) -> None:
    data = np.frombuffer(msg.data, dtype=np.uint8).copy()
    at = rng.integers(0, len(data), rng.integers(1, 9))
    data[at] ^= rng.integers(1, 256, len(at), dtype=np.uint8)
    msg.data = array.array("B", data.tobytes())


def wrong_shape(msg: Bottleneck, rng: np.random.Generator) -> None:
    if rng.random() < 0.5:
        shape = list(msg.shape)
        i, delta = rng.integers(len(shape)), int(_pick(rng, [-1, 1, 7, 1000]))
        shape[i] = shape[i] + delta if shape[i] + delta >= 0 else shape[i] + 1
        msg.shape = shape
    else:
        msg.shape = [int(s) for s in rng.integers(0, 64, rng.integers(0, 9))]


def too_many_dimensions(msg: Bottleneck, rng: np.random.Generator) -> None:
    msg.shape = [int(s) for s in rng.integers(1, U32_MAX, rng.integers(9, 65), dtype=np.int64)]


def declared_huge(msg: Bottleneck, rng: np.random.Generator) -> None:
    """A latent of billions of elements declared, the few real bytes sent."""
    msg.shape = [1, msg.shape[1], int(rng.integers(2**20, U32_MAX)), int(rng.integers(2**20, U32_MAX))]


def wrong_dtype(msg: Bottleneck, rng: np.random.Generator) -> None:
    msg.dtype = str(_pick(rng, ["int8", "float64", "uint8", "", "Float32", "float32 ", _text(rng, 8)]))


def unknown_codec(msg: Bottleneck, rng: np.random.Generator) -> None:
    msg.codec = str(_pick(rng, ["", "jpeg", "ENTROPY", "entropy ", "quant8-v2", "fp32", _text(rng, 12)]))


def unknown_version(msg: Bottleneck, rng: np.random.Generator) -> None:
    msg.codec_version = int(_pick(rng, [0, 3, 255, 2**16 - 1, int(rng.integers(3, 2**16))]))


def huge_chunk_sizes(msg: Bottleneck, rng: np.random.Generator) -> None:
    sizes = list(msg.chunk_sizes)
    if rng.random() < 0.5:
        sizes = [U32_MAX] * len(sizes)
    else:
        sizes[rng.integers(len(sizes))] = int(rng.integers(2**20, U32_MAX))
    msg.chunk_sizes = sizes


def lying_chunk_sizes(msg: Bottleneck, rng: np.random.Generator) -> None:
    """The same total, split differently between the streams."""
    sizes = list(msg.chunk_sizes)
    i, j = rng.choice(len(sizes), 2, replace=False)
    moved = int(rng.integers(1, sizes[i] + 1)) if sizes[i] else 0
    if not moved:
        i, j = j, i
        moved = int(rng.integers(1, sizes[i] + 1))
    sizes[i] -= moved
    sizes[j] += moved
    msg.chunk_sizes = sizes


def wrong_chunk_count(msg: Bottleneck, rng: np.random.Generator) -> None:
    sizes = list(msg.chunk_sizes)
    if rng.random() < 0.5:
        del sizes[rng.integers(len(sizes))]
    else:
        sizes.insert(rng.integers(len(sizes) + 1), 0)
    msg.chunk_sizes = sizes


def corrupt_escapes(msg: Bottleneck, rng: np.random.Generator) -> None:
    """Unterminated escape values: bytes with the continuation bit set at the end of the payload."""
    extra = rng.integers(1, 8)
    msg.data = msg.data + array.array("B", [0x80 | int(b) for b in rng.integers(0, 128, extra)])
    msg.chunk_sizes = [*msg.chunk_sizes[:-1], msg.chunk_sizes[-1] + int(extra)]


def malformed_lanes(msg: Bottleneck, rng: np.random.Generator) -> None:
    """One of the entropy version 2 payload mutations of the codec tests (codec_fixtures.py)."""
    mutations = lanes_mutations()
    mutate = mutations[str(_pick(rng, sorted(mutations)))]
    enc = mutate(from_bottleneck(msg).encoded, rng)
    msg.data, msg.chunk_sizes = array.array("B", enc.data), list(enc.chunk_sizes)


def absurd_geometry(msg: Bottleneck, rng: np.random.Generator) -> None:
    """A size no transform of this model produces: zero, beyond any camera, or inconsistent."""
    name = str(_pick(rng, list(GEOMETRY)))
    value = getattr(msg, name)
    if name.startswith("image"):
        choices = [0, int(rng.integers(MAX_IMAGE_SIDE + 1, U32_MAX))]
    elif name.startswith("resized"):
        choices = [0, int(rng.integers(1000, U32_MAX))]
    else:
        choices = [0, value + 1, value + 32, value - 32, U32_MAX]
    setattr(msg, name, int(_pick(rng, choices)))


def bad_scale(msg: Bottleneck, rng: np.random.Generator) -> None:
    msg.scale = float(_pick(rng, [math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 1e39, 1e308]))


def bad_zero_point(msg: Bottleneck, rng: np.random.Generator) -> None:
    msg.zero_point = int(_pick(rng, [-1, 256, -(2**31), 2**31 - 1, int(rng.integers(256, 2**31))]))


def non_finite_values(msg: Bottleneck, rng: np.random.Generator) -> None:
    halfs = np.frombuffer(msg.data, dtype="<u2").copy()
    at = rng.integers(0, len(halfs), rng.integers(1, 16))
    halfs[at] = rng.choice([0x7C00, 0xFC00, 0x7E00, 0x7C01], len(at))  # +inf, -inf, NaNs
    msg.data = array.array("B", halfs.tobytes())


def foreign_model(msg: Bottleneck, rng: np.random.Generator) -> None:
    name, _, digest = msg.model_id.partition("@")
    other = "".join(_pick(rng, list("0123456789abcdef")) for _ in digest)
    msg.model_id = str(_pick(rng, [f"{name}@{other}", "", name, msg.model_id + " ", _text(rng, 10_000)]))


def empty(msg: Bottleneck, rng: np.random.Generator) -> None:
    """Every field at its default but the sequence number."""
    for name in Bottleneck.get_fields_and_field_types():
        if name != "sequence":
            setattr(msg, name, getattr(Bottleneck(), name))


# Mutation -> the codecs whose payload it applies to (all: None).
MUTATIONS: dict[Mutation, tuple[str, ...] | None] = {
    truncated: None,
    padded: None,
    random_bytes: ("entropy", "entropy_v1", "fp16"),  # random quant8 bytes of the right size are valid
    flipped_entropy_bytes: ("entropy", "entropy_v1"),
    wrong_shape: None,
    too_many_dimensions: None,
    declared_huge: None,
    wrong_dtype: None,
    unknown_codec: None,
    unknown_version: None,
    huge_chunk_sizes: ("entropy", "entropy_v1"),
    lying_chunk_sizes: ("entropy", "entropy_v1"),
    wrong_chunk_count: ("entropy", "entropy_v1"),
    corrupt_escapes: ("entropy_v1",),
    malformed_lanes: ("entropy",),
    absurd_geometry: None,
    bad_scale: ("quant8",),
    bad_zero_point: ("quant8",),
    non_finite_values: ("fp16",),
    foreign_model: None,
    empty: None,
}


@pytest.fixture(scope="module")
def bottlenecks(valid: dict[str, Bottleneck], pipeline: TailPipeline) -> dict[str, Bottleneck]:
    """The valid bottleneck of each codec (entropy: version 2, the heads' default), and the entropy
    one in version 1 too ("entropy_v1"), which tails still decode."""
    msg = copy.deepcopy(valid["entropy"])
    latent = pipeline.decode(from_bottleneck(msg))
    enc = EntropyCodec(pipeline.codecs["entropy"].tables, version=1).encode(np.asarray(latent))
    msg.codec_version, msg.data, msg.chunk_sizes = 1, array.array("B", enc.data), list(enc.chunk_sizes)
    return {**valid, "entropy_v1": msg}


def malformed_messages(valid: dict[str, Bottleneck], count: int, seed: int) -> list[tuple[str, Bottleneck]]:
    """`count` (mutation name, message) pairs, the mutations in turn, each on a copy of a valid message."""
    rng = np.random.default_rng(seed)
    mutations = list(MUTATIONS.items())
    out = []
    for i in range(count):
        mutate, codecs = mutations[i % len(mutations)]
        msg = copy.deepcopy(valid[str(_pick(rng, list(codecs or valid)))])
        mutate(msg, rng)
        out.append((mutate.__name__, msg))
    return out


def test_malformed_messages_are_all_rejected_in_process(
    bottlenecks: dict[str, Bottleneck], pipeline: TailPipeline
) -> None:
    """The generator's messages are what they claim: each one is refused, with the reason expected."""
    for codec, msg in bottlenecks.items():
        assert rejection(pipeline, msg) is None, codec
    reasons: dict[str, Counter[str]] = {}
    for name, msg in malformed_messages(bottlenecks, 20 * len(MUTATIONS), SEED + 1):
        reasons.setdefault(name, Counter())[rejection(pipeline, msg)] += 1
    print("\n" + "\n".join(f"{name}: {dict(counts)}" for name, counts in reasons.items()))
    assert all(None not in counts for counts in reasons.values()), reasons
    assert reasons["foreign_model"] == Counter(model=20) and reasons["empty"] == Counter(model=20)
    assert set(reasons["wrong_dtype"]) == {"dtype"} and set(reasons["unknown_version"]) == {"version"}
    assert set(reasons["unknown_codec"]) == {"unknown_codec"} and set(reasons["declared_huge"]) == {"shape"}
    assert set(reasons["bad_scale"]) | set(reasons["bad_zero_point"]) | set(reasons["non_finite_values"]) == {
        "corrupt"
    }


def test_tail_node_survives_a_flood_of_malformed_bottlenecks(
    exported_head: dict[str, str],
    valid: dict[str, Bottleneck],
    bottlenecks: dict[str, Bottleneck],
    pipeline: TailPipeline,
    camera: Camera,
    ros_env: dict[str, str],
    tmp_path: Path,
) -> None:
    messages = malformed_messages(bottlenecks, MESSAGES, SEED)
    started = time.monotonic()
    expected = Counter(rejection(pipeline, msg) for _, msg in messages)
    classify_s = time.monotonic() - started
    assert None not in expected, "a generated message is valid"
    log = tmp_path / "tail.log"
    camera.node.destroy_subscription(camera.bottleneck_sub)  # the tail's must be the only one
    publisher = camera.node.create_publisher(Bottleneck, "bottleneck", BOTTLENECK_QOS)
    sequence = 0

    def send(msg: Bottleneck) -> None:
        nonlocal sequence
        msg.sequence = sequence
        sequence += 1
        publisher.publish(msg)

    def accounted() -> int:
        """Bottlenecks the tail has served, dropped, refused, failed on, or seen skipped in the sequence."""
        counters = ("frames", "dropped_frames", "rejected", "failed", "missed_frames")
        return sum(camera.counter("/tail", k) for k in counters)

    def send_valid(codec: str, stamp: Time | None = None, sent: Time | None = None) -> None:
        """A valid bottleneck (stamped now unless told), and its detections awaited."""
        msg = copy.deepcopy(valid[codec])
        now = camera.node.get_clock().now().to_msg()
        msg.header.stamp, msg.sent = stamp or now, sent or now
        served = len(camera.detections)
        send(msg)
        camera.spin_until(
            lambda: len(camera.detections) > served, f"detections of a valid {codec} bottleneck"
        )
        assert camera.detections[-1].header == msg.header

    with node_process("tail_node", "tail.yaml", tail_params(exported_head), ros_env, log) as tail:
        camera.spin_until(lambda: publisher.get_subscription_count() >= 1, "the tail to subscribe")
        send_valid("entropy")
        camera.spin_until(lambda: camera.counter("/tail", "frames") == 1, "the tail's counters")
        rss = [process_rss_mb(tail.pid)]

        started = time.monotonic()
        for i, (_, msg) in enumerate(messages):
            time.sleep(max(0.0, started + i * PACE_S - time.monotonic()))
            send(msg)
            if i % 100 == 0:
                camera.executor.spin_once(timeout_sec=0.0)
            if i % 1000 == 0:
                assert tail.poll() is None, log.read_text()
                rss.append(process_rss_mb(tail.pid))
        publish_s = time.monotonic() - started
        send(Bottleneck(model_id=valid["entropy"].model_id, data=array.array("B", bytes(OVERSIZED_BYTES))))
        camera.spin_until(lambda: camera.counter("/tail", "rejected") > MESSAGES // 4, "the rejections")
        rss.append(process_rss_mb(tail.pid))
        assert len(camera.detections) == 1, "a malformed bottleneck gave detections"

        # Frames skipped in the reader's queue count as missed once the next accepted one shows the gap.
        send_valid("quant8")
        camera.spin_until(lambda: accounted() == sequence, "the tail to account for every bottleneck")
        # Stamps come from other machines' clocks: one before 1970 or far ahead is no reason to fail.
        send_valid("fp16", stamp=Time(sec=-(2**31)), sent=Time(sec=2**31 - 1, nanosec=999_999_999))
        camera.spin_until(lambda: camera.counter("/tail", "frames") == 3, "the tail's counters")
        assert tail.poll() is None, log.read_text()
        rss.append(process_rss_mb(tail.pid))
    counters = camera.diagnostics.counters["/tail"]
    rejected = {k.removeprefix("rejected_"): v for k, v in counters.items() if k.startswith("rejected_")}
    print(
        f"\n{MESSAGES} malformed bottlenecks ({len(MUTATIONS)} kinds), classified in process in "
        f"{classify_s:.1f} s, published in {publish_s:.1f} s; expected reasons {dict(expected)}"
        f"\ntail counters: {counters}"
        f"\ntail RSS (MiB): {' '.join(f'{m:.0f}' for m in rss)}"
    )
    assert tail.returncode == 0, log.read_text()
    assert counters["failed"] == 0, log.read_text()
    assert counters["frames"] == len(camera.detections) == 3
    # Every message sent is served, rejected or skipped (the tail reads the newest only); none is
    # dropped, as the valid ones were sent one at a time.
    assert counters["dropped_frames"] == 0
    assert counters["frames"] + counters["rejected"] + counters["missed_frames"] == sequence
    assert sum(rejected.values()) == counters["rejected"] > MESSAGES // 4
    assert rejected.get("oversized", 0) >= 1
    expected["oversized"] += 1
    assert all(n <= expected[reason] for reason, n in rejected.items()), (rejected, expected)
    assert max(rss) < rss[0] + RSS_MARGIN_MB


U32 = st.integers(0, U32_MAX)
FIELDS = {
    "model_id": st.text(max_size=40),
    "codec": st.sampled_from([*CODECS, ""]) | st.text(max_size=12),
    "codec_version": st.integers(0, 2**16 - 1),
    "shape": st.lists(st.integers(0, 64) | U32, max_size=10),
    "dtype": st.sampled_from(["float32", "float16", "int8", ""]) | st.text(max_size=10),
    "scale": st.floats(),
    "zero_point": st.integers(-(2**31), 2**31 - 1),
    "chunk_sizes": st.lists(st.integers(0, 4096) | U32, max_size=30),
    **{name: st.integers(0, 300) | U32 for name in GEOMETRY},
}


@st.composite
def fuzzed(draw: st.DrawFn, valid: dict[str, Bottleneck]) -> Bottleneck:
    """A valid message with a few fields replaced, and its data cut, extended, altered or replaced."""
    msg = copy.deepcopy(draw(st.sampled_from(list(valid.values()))))
    # A few fields at a time, so that most messages get past the first check.
    for name in draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=3)):
        setattr(msg, name, draw(FIELDS[name]))
    data = bytearray(msg.data)
    edit = draw(st.sampled_from(["cut", "extend", "alter", "replace"]))
    if edit == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif edit == "extend":
        data += draw(st.binary(min_size=1, max_size=64))
    elif edit == "alter":
        for at, value in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)))):
            data[at] = value
    elif edit == "replace":
        data = draw(st.binary(max_size=4096))
    msg.data = array.array("B", bytes(data))
    return msg


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_only_payload_errors_leave_the_tail_decoding(
    data: st.DataObject, bottlenecks: dict[str, Bottleneck], pipeline: TailPipeline
) -> None:
    msg = data.draw(fuzzed(bottlenecks))
    try:
        detections = pipeline(from_bottleneck(msg))
    except PayloadError as exc:
        event(f"rejected: {exc.reason}")
        return
    event("served")
    assert np.isfinite(detections.boxes).all()
