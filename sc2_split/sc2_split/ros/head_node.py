"""Head node (robot): camera frames -> compressed bottleneck of the split detector.

The camera callback hands each frame to the encoder's thread, which takes only the newest one and
converts and encodes it. A camera faster than the encoder therefore costs dropped frames (counted,
and sent in every Bottleneck), never a growing queue or a stale result. No torch here unless the
torch backend is chosen.
"""

import threading
import time
from dataclasses import replace

from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from sc2_split.backends import BACKENDS, make_backend
from sc2_split.bundled import BUNDLED_HEAD
from sc2_split.codecs import CODECS
from sc2_split.control.operating_points import load_ladder_file
from sc2_split.head import HeadPipeline
from sc2_split.head_metadata import HeadMetadata
from sc2_split.ros.adaptive_rate import AdaptiveRate
from sc2_split.ros.bottleneck_conversion import check_frame_id, to_bottleneck
from sc2_split.ros.diagnostics import CounterDiagnostics
from sc2_split.ros.image_conversion import to_rgb
from sc2_split.ros.latency_window import LatencyWindow
from sc2_split.ros.newest_wins import NewestWinsWorker
from sc2_split.ros.parameters import CAMERA_PARAMETERS, SUMMARY_PERIOD, Param, declare_parameters
from sc2_split.ros.spin import spin_node
from sc2_split.ros.topics import BOTTLENECK_QOS, subscribe_camera
from sc2_split.untrusted import bounded_line
from sc2_split_msgs.msg import Bottleneck

PARAMETERS = {
    "metadata_file_path": Param(
        "",
        "head.json written by `python -m sc2_split.export` (model id, sizes, codec tables); "
        "empty: the bundled demo model's head",
    ),
    "model_file_path": Param(
        "", "ONNX head for the onnxruntime backend; empty: head.onnx beside the metadata file"
    ),
    "engine_file_path": Param(
        "",
        "TensorRT engine built on this robot, for the tensorrt backend; empty: head.engine beside "
        "the metadata file, if there is one",
    ),
    "backend": Param(
        "auto", "auto: tensorrt if an engine is given, else onnxruntime, else torch", ("auto", *BACKENDS)
    ),
    "device": Param(
        "cpu", "cpu or cuda (ONNX Runtime's CUDA provider or torch); TensorRT always runs on the GPU"
    ),
    "codec": Param("entropy", "bottleneck codec; the model's metadata lists those it supports", CODECS),
    "encode_workers": Param(
        0,
        "processes that entropy-code each frame's latent in version 1 (per-channel streams), a group of "
        "channels each; 0: version 2 (rANS lanes, the default), coded in this node's process on all cores",
        bounds=(0, 64),
    ),
    "max_rate": Param(
        0.0,
        "most frames encoded per second (Hz); 0: as many as camera and encoder allow",
        bounds=(0.0, 1000.0),
    ),
    "ladder_file": Param(
        "",
        "rate ladder (YAML: heads, codecs and their measured bytes and mAP) to switch between by the "
        "tail's feedback; empty: one rate, metadata_file_path and codec",
    ),
    "latency_budget_ms": Param(
        500.0, "with a ladder: the round trip (camera stamp to detections) to keep under", bounds=(1.0, 6e4)
    ),
    **CAMERA_PARAMETERS,
    "summary_period": SUMMARY_PERIOD,
}


class HeadNode(Node):
    def __init__(self) -> None:
        super().__init__("head")
        p = declare_parameters(self, PARAMETERS)
        metadata_path = p["metadata_file_path"] or str(BUNDLED_HEAD)
        files = (p["model_file_path"], p["engine_file_path"])
        self.adaptive: AdaptiveRate | None = None
        if p["ladder_file"]:
            points = load_ladder_file(p["ladder_file"])
            self.adaptive = AdaptiveRate(self, points, p["latency_budget_ms"])
            # Each head's ONNX file or engine beside its head.json.
            heads = {point.name: (point.metadata_file_path, point.codec, ("", "")) for point in points}
        else:
            heads = {"": (metadata_path, p["codec"], files)}
        self.pipelines = {
            name: self._pipeline(path, codec, model_files, p)
            for name, (path, codec, model_files) in heads.items()
        }
        if self.adaptive is not None:
            for point in self.adaptive.policy.points:
                self.adaptive.name_model(point, self.pipelines[point.name].metadata.model_id)
        # The most accurate rate's, where there are several.
        self.pipeline = next(iter(self.pipelines.values()))
        self.metadata = self.pipeline.metadata
        backend = self.pipeline.backend
        self.min_period_s = 1.0 / p["max_rate"] if p["max_rate"] > 0 else 0.0
        self.publisher = self.create_publisher(Bottleneck, "bottleneck", BOTTLENECK_QOS)
        self.window = LatencyWindow()
        self.received_frames = 0
        self.bad_frames = 0
        self.failed_frames = 0
        self.sequence = 0
        self._stopping = threading.Event()
        self.subscription = subscribe_camera(self, p["image_transport"], p["qos_reliability"], self.on_frame)
        self.diagnostics = CounterDiagnostics(
            self, self.metadata.model_id, warn_on=("bad_frames", "failed_frames")
        )
        self.summary_period_s = p["summary_period"]
        self.create_timer(self.summary_period_s, self.log_summary)
        self.encoder = NewestWinsWorker(self._encode_paced, self._count_failure, name="head_encoder")
        m = self.metadata
        pool = self.pipeline.encode_pool
        coding = "in process" if pool is None else f"on processes {pool.pids}"
        self.get_logger().info(
            f"model {m.model_id}: {backend.name} backend on {p['device']}, {p['codec']} codec ({coding}), "
            f"head input {m.input_width}x{m.input_height}; frames from {self.subscription.topic_name} "
            f"({p['qos_reliability']}), bottlenecks to {self.publisher.topic_name}"
        )

    def _pipeline(self, metadata_path: str, codec: str, files: tuple[str, str], p: dict) -> HeadPipeline:
        metadata = HeadMetadata.load(metadata_path)
        backend = make_backend(p["backend"], metadata_path, metadata, *files, p["device"])
        return HeadPipeline(metadata, backend, codec, p["encode_workers"])

    @property
    def dropped_frames(self) -> int:
        """Frames replaced by a newer one before the encoder took them: never encoded."""
        return self.encoder.dropped

    def on_frame(self, msg: Image | CompressedImage) -> None:
        """Hands the frame to the encoder's thread, in place of one it has not taken yet."""
        self.received_frames += 1
        self.encoder.put(msg)

    def _encode_paced(self, msg: Image | CompressedImage) -> None:
        started = time.monotonic()
        self.encode(msg)
        if self.min_period_s:
            # Frames that arrive meanwhile replace each other: max_rate bounds the robot's compute.
            self._stopping.wait(self.min_period_s - (time.monotonic() - started))

    def encode(self, msg: Image | CompressedImage) -> None:
        """Encodes and publishes one frame; a bad frame is logged and counted, not fatal."""
        started = time.perf_counter()
        try:
            check_frame_id(msg.header.frame_id)
            rgb = to_rgb(msg)
            convert_ms = 1e3 * (time.perf_counter() - started)
            pipeline = self.pipeline if self.adaptive is None else self.pipelines[self.adaptive.current.name]
            result = pipeline(rgb)
        except ValueError as exc:
            self.bad_frames += 1
            self.get_logger().warning(
                bounded_line(f"skipped a bad frame ({self.bad_frames} so far): {exc}"),
                throttle_duration_sec=5.0,
            )
            return
        # Decoding the camera message (JPEG, YUV) is part of the robot's preprocessing.
        result = replace(result, preprocess_ms=result.preprocess_ms + convert_ms)
        out = to_bottleneck(result, msg.header, pipeline.metadata.model_id, self.dropped_frames)
        if not self.context.ok():
            return
        out.sequence = self.sequence
        self.sequence += 1
        out.sent = self.get_clock().now().to_msg()
        self.publisher.publish(out)
        if self.adaptive is not None:
            self.adaptive.sent(msg.header.stamp)
        self.window.add(
            preprocess_ms=result.preprocess_ms,
            encode_ms=result.encode_ms,
            codec_ms=result.codec_ms,
            payload_bytes=len(result.encoded.data),
        )

    def _count_failure(self, exc: Exception) -> None:
        """Any other failure of a frame (the encoder's thread goes on with the next one)."""
        self.failed_frames += 1
        self.get_logger().error(
            bounded_line(f"encoding failed ({self.failed_frames} so far): {exc!r}"), throttle_duration_sec=5.0
        )

    def log_summary(self) -> None:
        frames, summary = self.window.take()
        counters = {
            "received_frames": self.received_frames,
            "encoded_frames": self.sequence,
            "dropped_frames": self.dropped_frames,
            "bad_frames": self.bad_frames,
            "failed_frames": self.failed_frames,
        }
        if self.adaptive is not None:
            policy = self.adaptive.policy
            counters |= {
                "rate_switches_down": policy.switches_down,
                "rate_switches_up": policy.switches_up,
                "operating_point": policy.index,  # 0: the most accurate
            }
        self.diagnostics.publish(counters, f"encoding for {self.metadata.model_id}")
        totals = (
            f"since start: {self.received_frames} received, {self.dropped_frames} dropped, "
            f"{self.bad_frames} bad, {self.failed_frames} failed"
        )
        if frames:
            self.get_logger().info(
                f"{frames} frames encoded ({frames / self.summary_period_s:.1f} Hz); mean/p90: {summary}; "
                + totals
            )
        else:
            self.get_logger().warning(
                f"no frame encoded in {self.summary_period_s:g} s from {self.subscription.topic_name}; "
                + totals,
                throttle_duration_sec=30.0,
            )

    def destroy_node(self) -> None:
        self._stopping.set()
        self.encoder.close()
        for pipeline in self.pipelines.values():
            pipeline.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin_node(HeadNode, args)


if __name__ == "__main__":
    main()
