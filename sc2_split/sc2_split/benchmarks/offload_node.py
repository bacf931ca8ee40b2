"""The full-offloading baseline's edge node: JPEG frames (sensor_msgs/CompressedImage) in, or an
H.264/H.265 stream's packets (CompressedImage of format h264/h265, one per frame, in order), the whole
unsplit detector on them, the same vision_msgs/Detection2DArray out as the split tail publishes.
Run by the end-to-end and link-trace benchmarks only; it is what split computing has to beat.

    python -m sc2_split.benchmarks.offload_node CONFIG CHECKPOINT DEVICE [h264|h265]"""

import sys
import time

import numpy as np
import torch
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header
from torchvision.transforms.functional import to_tensor
from vision_msgs.msg import Detection2DArray

from sc2_split.frames import Detections
from sc2_split.models.build import build_detector
from sc2_split.models.config import checkpoint_path, config_path, load_model_config
from sc2_split.offload.video import VideoDecoder
from sc2_split.ros.detections_conversion import to_detection_array
from sc2_split.ros.image_conversion import compressed_to_rgb
from sc2_split.ros.newest_wins import NewestWinsWorker
from sc2_split.ros.spin import spin_node
from sc2_split.ros.topics import RESULTS_QOS, camera_qos


class OffloadNode(Node):
    def __init__(self, config: str, checkpoint: str, device: str, stream: str = "") -> None:
        super().__init__("offload")
        self.device = torch.device(device)
        self.model = build_detector(load_model_config(config_path(config)), checkpoint_path(checkpoint))
        self.model.to(self.device)
        self.publisher = self.create_publisher(Detection2DArray, "detections", RESULTS_QOS)
        self.stream = stream
        self.decoder = VideoDecoder(stream) if stream else None
        self.packets = 0
        # JPEG: newest frame only, reliable, the same queueing as the split head's camera reader. A
        # stream's every packet counts (a lost one corrupts the frames up to the next keyframe).
        qos = RESULTS_QOS if stream else camera_qos("reliable")
        # The newest picture is detected while the next frame is decoded, as the split tail's network
        # runs while it decodes the next bottleneck.
        self.detector = NewestWinsWorker(self.detect, self._count_failure, "detector")
        self.create_subscription(CompressedImage, "image/compressed", self.on_frame, qos)

    def picture(self, msg: CompressedImage) -> np.ndarray | None:
        """The frame's picture: a JPEG decoded alone, or what the stream's decoder makes of its packet."""
        if self.decoder is None:
            return compressed_to_rgb(msg)
        if msg.format != self.stream:
            raise ValueError(f"expected {self.stream} packets, got format {msg.format!r}")
        self.packets += 1
        pictures = self.decoder.decode(bytes(msg.data), self.packets)
        return pictures[-1][1] if pictures else None

    def on_frame(self, msg: CompressedImage) -> None:
        started = time.perf_counter()
        rgb = self.picture(msg)
        if rgb is None:  # a packet that shows nothing: no detections for its frame
            return
        self.detector.put((msg.header, rgb, 1e3 * (time.perf_counter() - started)))

    def detect(self, frame: tuple[Header, np.ndarray, float]) -> None:
        header, rgb, decode_ms = frame
        started = time.perf_counter()
        with torch.inference_mode():
            out = self.model([to_tensor(rgb).to(self.device)])[0]
        result = {k: v.cpu().numpy() for k, v in out.items()}
        tail_ms = 1e3 * (time.perf_counter() - started)
        detections = Detections(result["boxes"], result["scores"], result["labels"], decode_ms, tail_ms)
        self.publisher.publish(to_detection_array(header, detections, 0.5, 100))

    def _count_failure(self, exc: Exception) -> None:
        self.get_logger().error(f"detection failed: {exc!r}", throttle_duration_sec=5.0)

    def destroy_node(self) -> None:
        self.detector.close()
        super().destroy_node()


def main() -> None:
    config, checkpoint, device = sys.argv[1:4]
    stream = sys.argv[4] if len(sys.argv) > 4 and not sys.argv[4].startswith("-") else ""
    spin_node(lambda: OffloadNode(config, checkpoint, device, stream), sys.argv)


if __name__ == "__main__":
    main()
