"""Overlay node (robot): the tail's detections drawn on the camera frames they came from, for RViz.

It runs where the frames are: only the small detection messages cross the network back from the edge,
never the image. Detections are matched to frames by stamp in a short ring buffer of recent frames.
"""

from collections import deque

from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from sc2_split.ros.diagnostics import CounterDiagnostics
from sc2_split.ros.image_conversion import rgb_to_image, to_rgb
from sc2_split.ros.overlay import LABEL_CHARS, draw_detections
from sc2_split.ros.parameters import CAMERA_PARAMETERS, Param, declare_parameters
from sc2_split.ros.spin import spin_node
from sc2_split.ros.topics import (
    LABEL_INFO_QOS,
    OVERLAY_QOS,
    RESULTS_QOS,
    subscribe_camera,
)
from sc2_split.untrusted import bounded_line

PARAMETERS = {
    **CAMERA_PARAMETERS,
    "frame_buffer_size": Param(
        30,
        "recent frames kept to meet their detections: at least the frame rate times the round trip",
        bounds=(1, 1000),
    ),
    "summary_period": Param(5.0, "seconds between counters on /diagnostics", bounds=(0.1, 3600.0)),
}

# Class names kept from a LabelInfo message: far beyond any detector's classes.
MAX_CLASSES = 10000


class OverlayNode(Node):
    def __init__(self) -> None:
        super().__init__("overlay")
        p = declare_parameters(self, PARAMETERS)
        self.frames: deque[Image | CompressedImage] = deque(maxlen=p["frame_buffer_size"])
        self.class_names: dict[str, str] = {}
        self.drawn = 0
        self.unmatched = 0
        self.bad_frames = 0
        self.bad_detections = 0
        self.publisher = self.create_publisher(Image, "overlay", OVERLAY_QOS)
        self.camera = subscribe_camera(self, p["image_transport"], p["qos_reliability"], self.on_frame)
        self.create_subscription(Detection2DArray, "detections", self.on_detections, RESULTS_QOS)
        self.create_subscription(LabelInfo, "label_info", self.on_label_info, LABEL_INFO_QOS)
        self.diagnostics = CounterDiagnostics(self, "overlay", warn_on=("bad_frames", "bad_detections"))
        self.create_timer(p["summary_period"], self.publish_counters)
        self.get_logger().info(
            f"drawing detections on frames from {self.camera.topic_name} to {self.publisher.topic_name}"
        )

    def on_frame(self, msg: Image | CompressedImage) -> None:
        """Keeps the frame, still compressed if it came so, until its detections arrive or it ages out."""
        self.frames.append(msg)

    def on_label_info(self, msg: LabelInfo) -> None:
        self.class_names = {str(c.class_id): c.class_name[:LABEL_CHARS] for c in msg.class_map[:MAX_CLASSES]}

    def on_detections(self, msg: Detection2DArray) -> None:
        frame = next((f for f in reversed(self.frames) if f.header == msg.header), None)
        if frame is None:
            self.unmatched += 1
            self.get_logger().warning(
                f"no frame stamped {msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d} among the last "
                f"{len(self.frames)} ({self.unmatched} unmatched so far): raise frame_buffer_size?",
                throttle_duration_sec=5.0,
            )
            return
        try:
            rgb = to_rgb(frame)
        except ValueError as exc:
            self.bad_frames += 1
            self.get_logger().warning(
                bounded_line(f"cannot draw on a bad frame ({self.bad_frames} so far): {exc}"),
                throttle_duration_sec=5.0,
            )
            return
        try:
            drawn = draw_detections(rgb, msg, self.class_names)
        except Exception as exc:  # detections from the network must never take the node down
            self.bad_detections += 1
            self.get_logger().error(
                bounded_line(f"cannot draw detections ({self.bad_detections} so far): {exc!r}"),
                throttle_duration_sec=5.0,
            )
            return
        self.publisher.publish(rgb_to_image(drawn, frame.header))
        self.drawn += 1

    def publish_counters(self) -> None:
        counters = {
            "drawn": self.drawn,
            "unmatched": self.unmatched,
            "bad_frames": self.bad_frames,
            "bad_detections": self.bad_detections,
        }
        self.diagnostics.publish(counters, f"drawing on {self.camera.topic_name}")


def main(args: list[str] | None = None) -> None:
    spin_node(OverlayNode, args)


if __name__ == "__main__":
    main()
