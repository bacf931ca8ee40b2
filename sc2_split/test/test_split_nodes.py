"""The head, tail and overlay nodes run as separate processes over DDS, started as the launch files
start them (installed executables, the shipped parameter files, overrides for a small test model),
and turn camera frames into detections of those frames; a foreign payload is rejected and counted."""

import array
import copy
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from PIL import Image as PilImage
from sc2_split.head_metadata import HeadMetadata
from sc2_split.ros.topics import BOTTLENECK_QOS, camera_qos
from sc2_split.testing.node_process import isolated_ros_env, node_process
from sensor_msgs.msg import CompressedImage, Image
from split_fixtures import FRAME_ID, HEIGHT, WIDTH, Camera, running_camera
from std_msgs.msg import Header

from sc2_split_msgs.msg import Bottleneck, SplitStats

MAX_DETECTIONS = 20
FOREIGN_MODEL_ID = "sc2_resnet50_fp@000000000000"


def print_stats(stats: list[SplitStats]) -> None:
    fields = ("payload_bytes", "preprocess_ms", "encode_ms", "codec_ms", "transport_ms", "decode_ms",
              "tail_ms", "end_to_end_ms", "head_dropped_frames", "tail_rejected")  # fmt: skip
    print("\nper-frame stats on `stats`:\n" + " ".join(f"{f:>13.13}" for f in fields))
    for s in stats:
        print(" ".join(f"{getattr(s, f):>13.1f}" if "ms" in f else f"{getattr(s, f):>13d}" for f in fields))


@dataclass
class SplitNodes:
    camera: Camera
    logs: dict[str, Path]


@pytest.fixture(scope="module")
def split_nodes(
    exported_head: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SplitNodes]:
    """Head, tail and overlay processes for this module's tests, and the camera in their domain; at the
    end each gets Ctrl-C and must exit cleanly."""
    head_overrides = {k: exported_head[k] for k in ("metadata_file_path", "model_file_path")}
    # Random weights score every class about equally (1/91): a zero threshold keeps their boxes.
    tail_overrides = {
        "model_config": exported_head["model_config"],
        "checkpoint": exported_head["checkpoint"],
        "score_threshold": 0.0,
        "max_detections": MAX_DETECTIONS,
    }
    specs = {
        "head": ("head_node", "head.yaml", head_overrides),
        "tail": ("tail_node", "tail.yaml", tail_overrides),
        "overlay": ("overlay_node", "head.yaml", {}),
    }
    env, out = isolated_ros_env(), tmp_path_factory.mktemp("split_nodes")
    logs = {name: out / f"{name}.log" for name in specs}
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        running_camera(env, monkeypatch) as camera,
        ExitStack() as stack,
    ):
        processes = {
            name: stack.enter_context(node_process(executable, params_file, overrides, env, logs[name]))
            for name, (executable, params_file, overrides) in specs.items()
        }
        camera.spin_until(
            lambda: camera.image_pub.get_subscription_count() >= 2, "head and overlay to subscribe"
        )
        camera.spin_until(lambda: bool(camera.label_info), "the tail's label_info")
        yield SplitNodes(camera, logs)
        camera.sending = False
        print_stats(camera.stats)
        for process in processes.values():
            process.send_signal(signal.SIGINT)
        for name, process in processes.items():
            assert process.wait(timeout=30) == 0, (
                f"{name} exited with {process.returncode}:\n{logs[name].read_text()}"
            )


def send_until(camera: Camera, condition: Callable[[], object], what: str) -> None:
    """The camera sends frames until `condition` holds."""
    camera.sending = True
    try:
        camera.spin_until(condition, what)
    finally:
        camera.sending = False


def test_tail_publishes_its_class_names_on_label_info(split_nodes: SplitNodes) -> None:
    class_ids = {str(c.class_id) for c in split_nodes.camera.label_info[0].class_map}
    assert len(class_ids) == 90  # COCO: 91 labels, background not listed


def test_frames_become_detections_in_the_source_frame_with_stats(
    split_nodes: SplitNodes, exported_head: dict[str, str]
) -> None:
    camera = split_nodes.camera
    served = len(camera.detections)
    send_until(camera, lambda: len(camera.detections) >= served + 2, "detections")
    class_ids = {str(c.class_id) for c in camera.label_info[0].class_map}
    for array_msg in camera.detections:
        stamp = (array_msg.header.stamp.sec, array_msg.header.stamp.nanosec)
        assert stamp in camera.sent and array_msg.header.frame_id == FRAME_ID
        assert len(array_msg.detections) == MAX_DETECTIONS
        for d in array_msg.detections:
            assert d.header == array_msg.header
            box, (result,) = d.bbox, d.results
            x, y, half_w, half_h = (
                box.center.position.x,
                box.center.position.y,
                box.size_x / 2,
                box.size_y / 2,
            )
            assert -1e-3 <= x - half_w <= x + half_w <= WIDTH + 1e-3
            assert -1e-3 <= y - half_h <= y + half_h <= HEIGHT + 1e-3
            assert result.hypothesis.class_id in class_ids and 0.0 <= result.hypothesis.score <= 1.0
    served_id = HeadMetadata.load(exported_head["metadata_file_path"]).model_id
    assert camera.stats
    for stats in camera.stats:
        assert (stats.model_id, stats.codec, stats.header.frame_id) == (served_id, "entropy", FRAME_ID)
        assert stats.payload_bytes > 0 and stats.end_to_end_ms >= stats.tail_ms > 0


def test_overlay_draws_the_detections_on_their_frame(split_nodes: SplitNodes) -> None:
    camera = split_nodes.camera
    send_until(camera, lambda: camera.overlays, "an overlay")
    overlay = camera.overlays[0]
    assert (overlay.header.stamp.sec, overlay.header.stamp.nanosec) in camera.sent
    assert (overlay.height, overlay.width, overlay.encoding) == (HEIGHT, WIDTH, "rgb8")
    raw = camera.sent[(overlay.header.stamp.sec, overlay.header.stamp.nanosec)]
    assert not np.array_equal(np.frombuffer(overlay.data, np.uint8).reshape(raw.shape), raw), "nothing drawn"


def test_head_skips_and_counts_a_frame_it_cannot_read_and_goes_on(split_nodes: SplitNodes) -> None:
    camera, head_log = split_nodes.camera, split_nodes.logs["head"]
    camera.image_pub.publish(Image(height=2, width=2, step=2, encoding="bayer_rggb8", data=bytes(4)))
    camera.spin_until(lambda: "skipped a bad frame" in head_log.read_text(), "the head to skip the frame")
    served = len(camera.detections)
    send_until(camera, lambda: len(camera.detections) > served, "detections after the bad frame")
    log = head_log.read_text()
    assert "skipped a bad frame (1 so far)" in log and "bayer_rggb8" in log, log


def test_tail_rejects_and_counts_a_payload_of_another_model_and_goes_on(
    split_nodes: SplitNodes, exported_head: dict[str, str]
) -> None:
    camera, tail_log = split_nodes.camera, split_nodes.logs["tail"]
    send_until(camera, lambda: camera.bottlenecks and camera.detections, "a bottleneck and its detections")
    # Sent while the tail is idle, so that no newer bottleneck replaces it in the tail's depth-1 reader.
    last_sent = camera.last_header
    camera.spin_until(
        lambda: camera.bottlenecks[-1].header == last_sent == camera.detections[-1].header,
        "the head and the tail to finish the last frame",
    )
    foreign = copy.deepcopy(camera.bottlenecks[-1])
    foreign.model_id = FOREIGN_MODEL_ID
    foreign_pub = camera.node.create_publisher(Bottleneck, "bottleneck", BOTTLENECK_QOS)
    try:
        # This node's own reader and the tail's.
        camera.spin_until(lambda: foreign_pub.get_subscription_count() >= 2, "the tail to match")
        foreign_pub.publish(foreign)
        camera.spin_until(lambda: "rejected a bottleneck" in tail_log.read_text(), "the rejection")
        send_until(camera, lambda: camera.stats[-1].tail_rejected == 1, "the rejection count in stats")
        served = len(camera.detections)
        send_until(camera, lambda: len(camera.detections) > served, "detections after the rejection")
    finally:
        camera.node.destroy_publisher(foreign_pub)
    served_id = HeadMetadata.load(exported_head["metadata_file_path"]).model_id
    (rejection,) = [line for line in tail_log.read_text().splitlines() if "rejected a bottleneck" in line]
    assert "(model, 1 so far)" in rejection and FOREIGN_MODEL_ID in rejection and served_id in rejection


def test_head_encodes_compressed_frames_at_most_at_max_rate_and_counts_the_rest(
    exported_head: dict[str, str], camera: Camera, ros_env: dict[str, str], tmp_path: Path
) -> None:
    overrides = {
        "metadata_file_path": exported_head["metadata_file_path"],
        "model_file_path": exported_head["model_file_path"],
        "image_transport": "compressed",
        "max_rate": 2.0,
    }
    jpeg_pub = camera.node.create_publisher(CompressedImage, "image/compressed", camera_qos("best_effort"))
    buffer = io.BytesIO()
    PilImage.fromarray(camera.rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(buffer, "JPEG")
    jpeg = array.array("B", buffer.getvalue())
    with node_process("head_node", "head.yaml", overrides, ros_env, tmp_path / "head.log"):
        camera.spin_until(lambda: jpeg_pub.get_subscription_count() >= 1, "the head to subscribe")
        sent = []
        for i in range(30):  # 10 Hz for 3 s, five times max_rate
            header = Header(stamp=Time(sec=1000 + i), frame_id=FRAME_ID)
            jpeg_pub.publish(CompressedImage(header=header, format="jpeg", data=jpeg))
            sent.append(header)
            deadline = time.monotonic() + 0.1
            while time.monotonic() < deadline:
                camera.executor.spin_once(timeout_sec=0.01)
        # The newest frame is always encoded in the end; the ones it replaced count as dropped.
        camera.spin_until(
            lambda: camera.bottlenecks and camera.bottlenecks[-1].header == sent[-1], "the last"
        )
    encoded = camera.bottlenecks
    stamps = [b.header.stamp.sec for b in encoded]
    assert stamps == sorted(stamps) and all(b.header in sent for b in encoded)
    # The head's own count of encoded frames: this test's reader may miss the first bottlenecks,
    # published before it matched the head's writer.
    head_encoded = encoded[-1].sequence + 1
    assert 2 <= head_encoded <= 2.0 * 3 + 2
    # Every frame that reached the head was either encoded or counted (best effort may lose a few).
    received = head_encoded + encoded[-1].head_dropped_frames
    assert len(sent) - 3 <= received <= len(sent)
    assert all(b.image_height == HEIGHT and b.image_width == WIDTH for b in encoded)


def test_head_node_runs_without_torch(exported_head: dict[str, str]) -> None:
    """The robot may have no torch: the head node and its ONNX backend must not load it."""
    script = (
        "import sys\n"
        "from sc2_split.ros import head_node\n"
        "from sc2_split.backends import make_backend\n"
        "from sc2_split.head_metadata import HeadMetadata\n"
        f"metadata = HeadMetadata.load({exported_head['metadata_file_path']!r})\n"
        f"make_backend('onnxruntime', '', metadata, {exported_head['model_file_path']!r})\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=dict(os.environ), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
