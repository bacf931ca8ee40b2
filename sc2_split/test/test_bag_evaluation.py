"""A robot's recording as evaluation input: camera frames that `bag_tool record` took off the DDS
graph are evaluated without labels, against the teacher's own detections on the raw frames
(agreement mAP), and a malformed frame in the bag is counted and left out."""

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import rclpy
from ament_index_python.packages import get_package_prefix
from builtin_interfaces.msg import Time
from PIL import Image
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sc2_split.data.sequences import sequence
from sc2_split.evaluation.__main__ import main
from sc2_split.ros.image_conversion import rgb_to_image
from sensor_msgs.msg import Image as ImageMsg
from std_msgs.msg import Header

TOPIC = "/camera/image_raw"
RELIABLE = ReliabilityPolicy.RELIABLE
FRAMES = 3
BAG_TOOL = str(Path(get_package_prefix("sc2_split")) / "lib" / "sc2_split" / "bag_tool")


def record_camera(bag: Path, frames: list[np.ndarray], ros_env: dict[str, str], log: Path) -> None:
    """Publishes the frames and one malformed image (too few bytes) while `bag_tool record` records."""
    context = Context()
    rclpy.init(
        context=context,
        domain_id=int(ros_env["ROS_DOMAIN_ID"]),
        signal_handler_options=SignalHandlerOptions.NO,
    )
    node = Node("test_camera", context=context)
    with log.open("w") as out:
        recorder = subprocess.Popen(
            [BAG_TOOL, "record", "-o", str(bag), "--count", str(FRAMES + 1), TOPIC],
            env=ros_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # Reliable and deep enough that a burst of frames all reach the recorder (a camera's depth 1
        # would replace a frame not yet delivered by the next one).
        publisher = node.create_publisher(ImageMsg, TOPIC, QoSProfile(depth=FRAMES + 1, reliability=RELIABLE))
        deadline = time.monotonic() + 60
        while publisher.get_subscription_count() == 0:
            assert time.monotonic() < deadline, f"the recorder did not subscribe:\n{log.read_text()}"
            time.sleep(0.05)
        time.sleep(1.0)  # let the recorder's reader match the writer before the first frame
        for i, rgb in enumerate(frames):
            publisher.publish(rgb_to_image(rgb, Header(stamp=Time(sec=100 + i), frame_id="camera")))
            if i == 1:
                broken = rgb_to_image(rgb, Header(stamp=Time(sec=100, nanosec=5), frame_id="camera"))
                broken.data = broken.data[:100]
                publisher.publish(broken)
        assert publisher.wait_for_all_acked(Duration(seconds=30))
        assert recorder.wait(timeout=60) == 0, log.read_text()
    finally:
        recorder.kill()
        node.destroy_node()
        context.try_shutdown()


def test_a_recorded_camera_bag_is_evaluated_as_agreement_with_the_teacher(
    ros_env: dict[str, str], tmp_path: Path
) -> None:
    # 320x240: a raw frame that Fast DDS's default shared-memory segment carries whole.
    frames = [np.asarray(Image.fromarray(f).resize((320, 240))) for f, _ in sequence("test", 2, FRAMES)]
    bag = tmp_path / "camera"
    record_camera(bag, frames, ros_env, tmp_path / "record.log")
    out = tmp_path / "eval"
    args = [
        "--bag",
        str(bag),
        "--topic",
        TOPIC,
        "--out",
        str(out),
        "--device",
        "cpu",
        "--latency-frames",
        "0",
    ]
    args += ["--jpeg", "20", "--webp", "--video", "h264", "--bitrates", "200000", "--gops", "1"]
    assert main([*args, "--students", "demo_fp_beta4.5_stage2", "--loss-draws", "1"]) == 0

    document = json.loads((out / "rate_accuracy_bag.json").read_text())
    assert document["metric"] == "agreement mAP"
    assert f"{FRAMES} frames of 320x240, 1 unreadable left out" in document["about"]
    rows = {(r["method"], r["payload"]): r for r in document["rows"]}
    assert set(rows) == {
        ("teacher", "raw"),
        ("JPEG", "jpeg q20"),
        ("H.264 GOP 1 s", "h264 0.2 Mbit/s gop 1 s"),
        ("demo_fp_beta4.5_stage2", "entropy"),
        ("demo_fp_beta4.5_stage2", "quant8"),
        ("demo_fp_beta4.5_stage2", "fp16"),
    }
    # The reference is the teacher on these very frames: it agrees with itself, the others less.
    assert rows[("teacher", "raw")]["map"] > 0.99
    assert rows[("teacher", "raw")]["bytes_per_frame"] == 320 * 240 * 3
    assert all(0 <= r["map"] < 1 for key, r in rows.items() if key != ("teacher", "raw"))
    assert rows[("JPEG", "jpeg q20")]["bytes_per_frame"] < rows[("teacher", "raw")]["bytes_per_frame"] / 10
    table = (out / "rate_accuracy_bag.md").read_text()
    assert "agreement mAP@[.5:.95]" in table and "not accuracy" in table
    assert (out / "rate_accuracy_bag.png").stat().st_size > 10_000
