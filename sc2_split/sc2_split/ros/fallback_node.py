"""Fallback node (robot): the one publisher of `detections`, from the edge while it answers and from
a local detector while it does not.

The tail publishes on `edge/detections` (remapped); this node passes each frame's first detections
on to `detections` and refuses any later ones (a late edge answer for a frame already detected here),
so a frame never gets two messages. When no edge detections have come for `fallback_after_ms`, it
runs the local detector (the teacher on ONNX Runtime, torch-free) on the newest camera frames, at
most `max_rate` a second, until the edge answers again. The source and every start and stop are
logged and counted on /diagnostics.
"""

import threading
import time

from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from sc2_split.control.fallback import Fallback, OncePerFrame
from sc2_split.local_detector import LocalDetector
from sc2_split.ros.bottleneck_conversion import check_frame_id
from sc2_split.ros.detections_conversion import to_detection_array
from sc2_split.ros.diagnostics import CounterDiagnostics
from sc2_split.ros.image_conversion import to_rgb
from sc2_split.ros.newest_wins import NewestWinsWorker
from sc2_split.ros.parameters import CAMERA_PARAMETERS, SUMMARY_PERIOD, Param, declare_parameters
from sc2_split.ros.spin import spin_node
from sc2_split.ros.topics import RESULTS_QOS, subscribe_camera
from sc2_split.untrusted import bounded_line

# How often the node checks whether the edge has been silent too long.
CHECK_PERIOD_S = 0.05

PARAMETERS = {
    "model_file_path": Param(
        "", "the local detector: an ONNX file from `python -m sc2_split.export.detector_onnx` (required)"
    ),
    "fallback_after_ms": Param(
        1000.0, "silence of the edge after which the robot detects for itself", bounds=(1.0, 6e5)
    ),
    "max_rate": Param(
        2.0,
        "most frames the local detector runs per second (Hz): what the robot can afford",
        bounds=(0.01, 1e3),
    ),
    "score_threshold": Param(0.5, "lowest score of a local detection", bounds=(0.0, 1.0)),
    "max_detections": Param(100, "most local detections per frame, best first", bounds=(1, 10000)),
    **CAMERA_PARAMETERS,
    "summary_period": SUMMARY_PERIOD,
}


class FallbackNode(Node):
    def __init__(self) -> None:
        super().__init__("fallback")
        p = declare_parameters(self, PARAMETERS)
        if not p["model_file_path"]:
            raise ValueError("model_file_path is required: the local detector's ONNX file")
        self.detector = LocalDetector(p["model_file_path"])
        self.score_threshold = p["score_threshold"]
        self.max_detections = p["max_detections"]
        self.min_period_s = 1.0 / p["max_rate"]
        self.fallback = Fallback(p["fallback_after_ms"], self._now_s())
        self.once = OncePerFrame()
        self._lock = threading.Lock()  # the executor and the local detector's thread both publish
        self.published = {"edge": 0, "local": 0}
        self.bad_frames = 0
        self.failed_frames = 0
        self._stopping = threading.Event()
        self.newest: Image | CompressedImage | None = None  # the camera's last frame
        self.publisher = self.create_publisher(Detection2DArray, "detections", RESULTS_QOS)
        self.create_subscription(Detection2DArray, "edge/detections", self.on_edge, RESULTS_QOS)
        self.local = NewestWinsWorker(self._detect_paced, self._count_failure, name="local_detector")
        self.subscription = subscribe_camera(self, p["image_transport"], p["qos_reliability"], self.on_frame)
        self.diagnostics = CounterDiagnostics(
            self, "local detector", warn_on=("fallback_starts", "failed_frames")
        )
        self.create_timer(CHECK_PERIOD_S, self.check_edge)
        self.create_timer(p["summary_period"], self.publish_counters)
        self.get_logger().info(
            "detections from edge/detections to "
            f"{self.publisher.topic_name}; local detector {p['model_file_path']} "
            f"({self.detector.width}x{self.detector.height}) after {p['fallback_after_ms']:g} ms of silence"
        )

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    def on_edge(self, msg: Detection2DArray) -> None:
        if self.fallback.edge_answered(self._now_s()):
            self.get_logger().info(
                f"the edge answers again: split computing (fallback {self.fallback.stops})"
            )
        self.publish_once(msg, "edge")

    def check_edge(self) -> None:
        if self.fallback.update(self._now_s()):
            self.get_logger().warning(
                f"no detections from the edge for {1e3 * self.fallback.after_s:g} ms: detecting locally "
                f"(fallback {self.fallback.starts})"
            )
            if self.newest is not None:
                # The frame at hand, not the camera's next: the gap is the silence and one detection.
                self.local.put(self.newest)

    def on_frame(self, msg: Image | CompressedImage) -> None:
        self.newest = msg
        if self.fallback.local:
            self.local.put(msg)

    def _detect_paced(self, msg: Image | CompressedImage) -> None:
        started = time.monotonic()
        self.detect(msg)
        # Frames that arrive meanwhile replace each other: max_rate bounds the robot's compute.
        self._stopping.wait(self.min_period_s - (time.monotonic() - started))

    def detect(self, msg: Image | CompressedImage) -> None:
        if not self.fallback.local:  # the edge came back while this frame waited
            return
        try:
            check_frame_id(msg.header.frame_id)
            rgb = to_rgb(msg)
        except ValueError as exc:
            self.bad_frames += 1
            self.get_logger().warning(
                bounded_line(f"skipped a bad frame ({self.bad_frames} so far): {exc}"),
                throttle_duration_sec=5.0,
            )
            return
        detections = self.detector(rgb)
        if self.context.ok():
            out = to_detection_array(msg.header, detections, self.score_threshold, self.max_detections)
            self.publish_once(out, "local")

    def publish_once(self, msg: Detection2DArray, source: str) -> None:
        stamp = msg.header.stamp
        with self._lock:
            if not self.once.first(stamp.sec * 10**9 + stamp.nanosec):
                return
            self.publisher.publish(msg)
            self.published[source] += 1

    def _count_failure(self, exc: Exception) -> None:
        self.failed_frames += 1
        self.get_logger().error(
            bounded_line(f"local detection failed ({self.failed_frames} so far): {exc!r}"),
            throttle_duration_sec=5.0,
        )

    def publish_counters(self) -> None:
        counters = {
            "edge_frames": self.published["edge"],
            "local_frames": self.published["local"],
            "refused_duplicates": self.once.refused,
            "fallback_starts": self.fallback.starts,
            "fallback_stops": self.fallback.stops,
            "local": int(self.fallback.local),  # 1: the detections come from the robot itself
            "bad_frames": self.bad_frames,
            "failed_frames": self.failed_frames,
        }
        source = "the local detector" if self.fallback.local else "the edge"
        self.diagnostics.publish(counters, f"detections from {source}")

    def destroy_node(self) -> None:
        self._stopping.set()
        self.local.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin_node(FallbackNode, args)


if __name__ == "__main__":
    main()
