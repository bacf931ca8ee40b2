"""The robot's head, a bag tool or a served tail's client have no torch: importing and using the
codecs (entropy coding on worker processes included), the frame types that cross processes and
their ROS conversions, and a tail node in client mode, must not load it. The other way round, the
Triton server and the fleet benchmark run on a GPU machine without ROS."""

import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]

CODECS_SCRIPT = """
import sys

import numpy as np

from sc2_split.codecs import CODECS, EntropyTables, make_codec
from sc2_split.codecs.channel_pool import ChannelPool

tables = EntropyTables.from_dict({
    "quantized_cdf": [[0, 1000, 9000, 57000, 65000, 65536, 0], [0, 30000, 65000, 65535, 65536, 0, 0]],
    "cdf_length": [6, 5],
    "offset": [-2, -1],
    "medians": [0.25, -1.5],
    "precision": 16,
})
x = np.random.default_rng(0).normal(size=(1, 2, 6, 8)).astype(np.float32)
x[0, 0, 0, 0] = 50.0
for name in CODECS:
    codec = make_codec(name, tables)
    y = codec.decode(codec.encode(x), x.shape)
    assert y.shape == x.shape and np.abs(y - x).max() <= 0.5, name
with ChannelPool(tables, 2) as pool:
    pooled = make_codec("entropy", tables, pool)  # version 1, per-channel streams
    assert pooled.encode(x) == make_codec("entropy", tables, entropy_version=1).encode(x)
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "compressai"))
assert not loaded, loaded
print("ok")
"""


FRAMES_SCRIPT = """
import sys

import numpy as np
from std_msgs.msg import Header

from sc2_split.codecs import EncodedTensor
from sc2_split.frames import CodedFrame, Detections
from sc2_split.geometry import ImageGeometry
from sc2_split.head import HeadResult
from sc2_split.ros.bottleneck_conversion import from_bottleneck, to_bottleneck
from sc2_split.ros.detections_conversion import to_detection_array

encoded = EncodedTensor("fp16", 1, (1, 2, 3, 4), "float16", bytes(48))
frame = CodedFrame(encoded, ImageGeometry(24, 32, 24, 32, 32, 32), "model@0123")
result = HeadResult(encoded, frame.geometry, preprocess_ms=1.0, encode_ms=2.0, codec_ms=3.0)
assert from_bottleneck(to_bottleneck(result, Header(), frame.model_id, 0)) == frame
boxes = np.array([[1.0, 2.0, 5.0, 8.0]], np.float32)
detections = Detections(boxes, np.array([0.9], np.float32), np.array([3]), decode_ms=1.0, tail_ms=2.0)
(d,) = to_detection_array(Header(), detections, 0.5, 10).detections
assert (d.bbox.center.position.x, d.bbox.size_y, d.results[0].hypothesis.class_id) == (3.0, 6.0, "3")
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "torchvision"))
assert not loaded, loaded
print("ok")
"""

ROBOT_NODES_SCRIPT = """
import sys

import sc2_split.control.fallback
import sc2_split.control.rate_policy
import sc2_split.local_detector
import sc2_split.ros.fallback_node
import sc2_split.ros.head_node

loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "torchvision"))
assert not loaded, loaded
print("ok")
"""

# A tail node with a server_url set, serving two robots: no model, class names from the bundled head.
CLIENT_MODE_SCRIPT = """
import sys

import rclpy

from sc2_split.head_metadata import HeadMetadata
from sc2_split.bundled import BUNDLED_HEAD
from sc2_split.ros.tail_node import TailNode

rclpy.init(args=["--ros-args", "-p", "server_url:=localhost:9", "-p", "robots:=[robot1, robot2]",
             "-p", "discover_robots:=true"])
node = TailNode()
assert [link.namespace for link in node.served.links.values()] == ["robot1", "robot2"]
assert node.class_names == HeadMetadata.load(BUNDLED_HEAD).class_names and len(node.class_names) > 1
node.destroy_node()
rclpy.shutdown()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "torchdistill"))
assert not loaded, loaded
print("ok")
"""

# The server side of the served tail, where no ROS is installed: every ROS module import fails.
SERVER_WITHOUT_ROS_SCRIPT = """
import sys

for name in ("rclpy", "ament_index_python", "std_msgs", "vision_msgs", "sc2_split_msgs"):
    sys.modules[name] = None

import sc2_split.benchmarks.fleet
import sc2_split.serving.process
import sc2_split.serving.repository
import sc2_split.serving.server

print("ok")
"""


# The robots' legs (Jazzy, Python 3.10) install no edge packages (requirements/edge.txt); the Kilted
# leg, which does, runs these.
EDGE_ONLY = pytest.mark.skipif(
    not all(find_spec(name) for name in ("tritonclient", "pytriton", "psutil")),
    reason="the edge's serving packages (requirements/edge.txt) are not installed in this leg",
)


def run_without_torch(script: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    """Runs `script` in a fresh interpreter, which prints "ok" when it found no torch loaded."""
    env = dict(env or os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_codecs_work_without_importing_torch(tmp_path: Path) -> None:
    run_without_torch(CODECS_SCRIPT, tmp_path)


def test_frame_types_and_their_ros_conversions_work_without_importing_torch(tmp_path: Path) -> None:
    run_without_torch(FRAMES_SCRIPT, tmp_path)


def test_the_robot_side_nodes_rate_control_and_local_detector_import_without_torch(tmp_path: Path) -> None:
    run_without_torch(ROBOT_NODES_SCRIPT, tmp_path)


@EDGE_ONLY
def test_the_tail_node_in_client_mode_holds_no_model_and_imports_no_torch(
    tmp_path: Path, ros_env: dict[str, str]
) -> None:
    run_without_torch(CLIENT_MODE_SCRIPT, tmp_path, ros_env)


@EDGE_ONLY
def test_the_triton_server_and_the_fleet_benchmark_import_without_ros(tmp_path: Path) -> None:
    run_without_torch(SERVER_WITHOUT_ROS_SCRIPT, tmp_path)
