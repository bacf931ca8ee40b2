"""Helpers of the tests that run the split nodes as processes over DDS: the small model exported as
a head, and the test's own node, which plays the camera and records what the split nodes publish.
conftest.py makes fixtures of them (`exported_head`, `camera`). Importing this module imports no torch:
the Jazzy leg, which has none, uses the test's node too."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from sc2_split.backends import make_backend
from sc2_split.data import sample_frames
from sc2_split.head import HeadPipeline
from sc2_split.head_metadata import HeadMetadata
from sc2_split.ros.bottleneck_conversion import to_bottleneck
from sc2_split.ros.image_conversion import rgb_to_image
from sc2_split.ros.topics import BOTTLENECK_QOS, LABEL_INFO_QOS, OVERLAY_QOS, RESULTS_QOS, camera_qos
from sc2_split.testing.diagnostics_reader import DiagnosticsReader
from sc2_split.testing.soak import SoakReport, run_soak
from sc2_split.testing.spin_until import spin_until
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, LabelInfo

from sc2_split_msgs.msg import Bottleneck, SplitStats

HEIGHT, WIDTH = 96, 128
FRAME_ID = "camera_optical_frame"
# Generous: the tail runs a ResNet-50 on 2 shared CPU cores; a normal run takes a fraction of this.
TIMEOUT_S = 120.0
# The nodes' `summary_period` in these tests: counters on /diagnostics twice a second.
COUNTER_PERIOD_S = 0.5


def export_head(config: str, checkpoint: str, out: str) -> dict[str, str]:
    """The model exported for HEIGHT x WIDTH frames, and the parameters that point the nodes at it."""
    from sc2_split.export.__main__ import main as export_main  # torch: the Jazzy leg has none

    args = ["--config", config, "--checkpoint", checkpoint, "--out", out, "--parity-frames", "1"]
    assert export_main([*args, "--height", str(HEIGHT), "--width", str(WIDTH)]) == 0
    return {
        "metadata_file_path": str(Path(out) / "head.json"),
        "model_file_path": str(Path(out) / "head.onnx"),
        "model_config": config,
        "checkpoint": checkpoint,
    }


def valid_bottlenecks(exported_head: dict[str, str]) -> dict[str, Bottleneck]:
    """One real bottleneck per codec of the exported head, as the head node sends them."""
    metadata = HeadMetadata.load(exported_head["metadata_file_path"])
    backend = make_backend(
        "onnxruntime", exported_head["metadata_file_path"], metadata, exported_head["model_file_path"]
    )
    rgb = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    header = Header(frame_id=FRAME_ID)
    return {
        codec: to_bottleneck(HeadPipeline(metadata, backend, codec)(rgb), header, metadata.model_id, 0)
        for codec in metadata.codecs
    }


def head_params(exported_head: dict[str, str], **overrides: object) -> dict[str, object]:
    """Overrides of head.yaml for the exported head, counters every COUNTER_PERIOD_S."""
    names = ("metadata_file_path", "model_file_path")
    return {**{k: exported_head[k] for k in names}, "summary_period": COUNTER_PERIOD_S, **overrides}


def tail_params(exported_head: dict[str, str], **overrides: object) -> dict[str, object]:
    """Overrides of tail.yaml for the exported head's model, counters every COUNTER_PERIOD_S."""
    names = ("model_config", "checkpoint")
    return {**{k: exported_head[k] for k in names}, "summary_period": COUNTER_PERIOD_S, **overrides}


class Camera:
    """The test's node: publishes frames like a camera driver and records what the split nodes send."""

    def __init__(self, context: Context) -> None:
        self.node = Node("test_camera", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.image_pub = self.node.create_publisher(Image, "image", camera_qos("best_effort"))
        self.sent: dict[tuple[int, int], np.ndarray] = {}
        self.detections: list[Detection2DArray] = []
        self.stats: list[SplitStats] = []
        self.label_info: list[LabelInfo] = []
        self.overlays: list[Image] = []
        self.bottlenecks: list[Bottleneck] = []
        self.rng = np.random.default_rng(0)
        node = self.node
        node.create_subscription(Detection2DArray, "detections", self.detections.append, RESULTS_QOS)
        node.create_subscription(SplitStats, "stats", self.stats.append, RESULTS_QOS)
        node.create_subscription(LabelInfo, "label_info", self.label_info.append, LABEL_INFO_QOS)
        node.create_subscription(Image, "overlay", self.overlays.append, OVERLAY_QOS)
        self.bottleneck_sub = node.create_subscription(
            Bottleneck, "bottleneck", self.bottlenecks.append, BOTTLENECK_QOS
        )
        self.diagnostics = DiagnosticsReader(node)
        self.sending = False
        self.last_header = Header()
        node.create_timer(0.25, self.send_frame)

    def send_frame(self) -> None:
        if self.sending:
            self.publish_frame()

    def publish_frame(self) -> None:
        """One random frame, stamped now."""
        rgb = self.rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        header = Header(stamp=self.node.get_clock().now().to_msg(), frame_id=FRAME_ID)
        self.sent[(header.stamp.sec, header.stamp.nanosec)] = rgb
        self.last_header = header
        self.image_pub.publish(rgb_to_image(rgb, header))

    def spin_until(self, condition: Callable[[], object], what: str, timeout_s: float = TIMEOUT_S) -> None:
        assert spin_until(self.executor, condition, timeout_s), f"timed out waiting for {what}"

    def wait_for_head_and_tail(self) -> None:
        """Until the head subscribes to `image` and the tail to `bottleneck`, so that the tail gets
        the head's first bottleneck."""
        self.spin_until(lambda: self.image_pub.get_subscription_count() >= 1, "the head to subscribe")
        self.spin_until(lambda: self.label_info, "the tail's label_info")
        # This node's subscription and the tail's.
        self.spin_until(lambda: self.node.count_subscribers("/bottleneck") >= 2, "the tail to subscribe")

    def spin_for(self, seconds: float) -> None:
        spin_until(self.executor, lambda: False, seconds)

    def counter(self, node_name: str, counter: str) -> int:
        """A split node's counter as it last published it on /diagnostics (e.g. "/tail", "frames")."""
        return self.diagnostics.get(node_name, counter)


def join_domain(ros_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Sets this test process to join the DDS domain of child processes started with ros_env."""
    for name in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY"):
        monkeypatch.setenv(name, ros_env[name])


@contextmanager
def running_camera(
    ros_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, enclave: str | None = None
) -> Iterator[Camera]:
    """A node of this test process in the child processes' DDS domain, in a context of its own (in
    `enclave` where given, `--enclave`), until the block ends."""
    join_domain(ros_env, monkeypatch)
    context = Context()
    args = ["--ros-args", "--enclave", enclave] if enclave else []
    rclpy.init(args=args, context=context, signal_handler_options=SignalHandlerOptions.NO)
    try:
        camera = Camera(context)
        yield camera
        camera.node.destroy_node()
    finally:
        context.try_shutdown()


def soak_split_nodes(
    exported_head: dict[str, str],
    ros_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    rate_hz: float,
    seconds: float,
) -> SoakReport:
    """The test head and tail under a camera at `rate_hz` for `seconds`, memory sampled every second."""
    join_domain(ros_env, monkeypatch)
    frames = sample_frames(HEIGHT, WIDTH, 8)
    report = run_soak(
        head_params(exported_head), tail_params(exported_head), frames, rate_hz, seconds, ros_env, tmp_path,
        sample_period_s=1.0,
    )  # fmt: skip
    print("\n" + report.summary())
    return report
