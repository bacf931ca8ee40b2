"""Fixtures of the served tail's tests: recorded bottlenecks of the small exported head, robots that
publish them in their namespaces, and a tail_server serving the head's model."""

import subprocess
import urllib.request
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time
from sc2_split.backends import make_backend
from sc2_split.data import sample_frames
from sc2_split.head import HeadPipeline
from sc2_split.head_metadata import HeadMetadata
from sc2_split.ros.bottleneck_conversion import to_bottleneck
from sc2_split.ros.topics import BOTTLENECK_QOS, LABEL_INFO_QOS, RESULTS_QOS
from sc2_split.serving.process import ServerPorts, tail_server_process
from sc2_split.serving.protocol import triton_model_name
from split_fixtures import HEIGHT, WIDTH, Camera
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, LabelInfo

from sc2_split_msgs.msg import Bottleneck, SplitStats


def record_bottlenecks(exported_head: dict[str, str], count: int) -> list[Bottleneck]:
    """`count` bottlenecks of sample frames, as the head node would publish them (unstamped)."""
    path = exported_head["metadata_file_path"]
    metadata = HeadMetadata.load(path)
    backend = make_backend("onnxruntime", path, metadata, exported_head["model_file_path"])
    with HeadPipeline(metadata, backend, "entropy") as head:
        return [
            to_bottleneck(head(frame), Header(), metadata.model_id, 0)
            for frame in sample_frames(HEIGHT, WIDTH, count)
        ]


def copy_bottleneck(msg: Bottleneck) -> Bottleneck:
    out = Bottleneck()
    for field in Bottleneck.get_fields_and_field_types():
        setattr(out, field, getattr(msg, field))
    return out


class Robot:
    """One simulated robot on the test's node: publishes bottlenecks in its namespace and records
    what the tail publishes there."""

    def __init__(self, camera: Camera, namespace: str) -> None:
        node = camera.node
        self.namespace = namespace
        self.frame_id = f"{namespace}_camera"
        self.sequence = 0
        self.publisher = node.create_publisher(Bottleneck, f"{namespace}/bottleneck", BOTTLENECK_QOS)
        self.sent: dict[tuple[int, int], Bottleneck] = {}
        self.detections: list[Detection2DArray] = []
        self.stats: list[SplitStats] = []
        self.label_info: list[LabelInfo] = []
        node.create_subscription(
            Detection2DArray, f"{namespace}/detections", self.detections.append, RESULTS_QOS
        )
        node.create_subscription(SplitStats, f"{namespace}/stats", self.stats.append, RESULTS_QOS)
        node.create_subscription(LabelInfo, f"{namespace}/label_info", self.label_info.append, LABEL_INFO_QOS)
        self.clock = node.get_clock()

    def publish(self, recorded: Bottleneck, stamp_sec: int) -> Bottleneck:
        """`recorded`, stamped with this robot's frame id and `stamp_sec`, as its next frame."""
        msg = copy_bottleneck(recorded)
        msg.header = Header(stamp=Time(sec=stamp_sec), frame_id=self.frame_id)
        msg.sequence = self.sequence
        msg.sent = self.clock.now().to_msg()
        self.sequence += 1
        self.sent[(stamp_sec, 0)] = msg
        self.publisher.publish(msg)
        return msg

    def answered(self, msg: Bottleneck) -> bool:
        """Whether the tail has published both the detections and the stats of `msg`."""
        return any(d.header == msg.header for d in self.detections) and any(
            s.header == msg.header for s in self.stats
        )


def served_model(
    exported_head: dict[str, str], ports: ServerPorts, env: dict[str, str], log: Path, queue_delay_us: int
) -> AbstractContextManager[subprocess.Popen]:
    """tail_server on the CPU serving the exported head's model, batches of up to 8 frames."""
    model = f"{exported_head['model_config']}:{exported_head['checkpoint']}"
    args = ["--model", model, "--max-batch", "8", "--queue-delay-us", str(queue_delay_us)]
    served = triton_model_name(HeadMetadata.load(exported_head["metadata_file_path"]).model_id)
    return tail_server_process(args, ports, env, log, [served])


def batch_counts(ports: ServerPorts) -> tuple[int, int]:
    """(frames, batches) the server has run so far, over all its models, from its Prometheus metrics
    (where an operator reads them too)."""
    with urllib.request.urlopen(f"http://localhost:{ports.metrics}/metrics", timeout=10) as response:
        text = response.read().decode()
    totals = {"nv_inference_count": 0, "nv_inference_exec_count": 0}
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name in totals:
            totals[name] += int(float(rest.rsplit(" ", 1)[1]))
    return totals["nv_inference_count"], totals["nv_inference_exec_count"]


def boxes_of(array: Detection2DArray) -> np.ndarray:
    """(N, 6): center x, y, size x, y, label, score of each detection, in order."""
    return np.array(
        [
            [
                d.bbox.center.position.x,
                d.bbox.center.position.y,
                d.bbox.size_x,
                d.bbox.size_y,
                float(d.results[0].hypothesis.class_id),
                d.results[0].hypothesis.score,
            ]
            for d in array.detections
        ]
    ).reshape(-1, 6)
