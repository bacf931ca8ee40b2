"""The full-offloading baseline's edge node: JPEG frames (sensor_msgs/CompressedImage) in, the whole
unsplit detector on them, the same vision_msgs/Detection2DArray out as the split tail publishes.
Run by the end-to-end benchmark only; it is what split computing has to beat."""

import sys
import time

import torch
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage
from torchvision.transforms.functional import to_tensor
from vision_msgs.msg import Detection2DArray

from sc2_split.frames import Detections
from sc2_split.models.build import build_detector
from sc2_split.models.config import checkpoint_path, config_path, load_model_config
from sc2_split.ros.detections_conversion import to_detection_array
from sc2_split.ros.image_conversion import compressed_to_rgb
from sc2_split.ros.spin import spin_node
from sc2_split.ros.topics import RESULTS_QOS, camera_qos


class OffloadNode(Node):
    def __init__(self, config: str, checkpoint: str, device: str) -> None:
        super().__init__("offload")
        self.device = torch.device(device)
        self.model = build_detector(load_model_config(config_path(config)), checkpoint_path(checkpoint))
        self.model.to(self.device)
        self.publisher = self.create_publisher(Detection2DArray, "detections", RESULTS_QOS)
        # Newest frame only, reliable: the same queueing as the split head's camera reader.
        self.create_subscription(CompressedImage, "image/compressed", self.on_frame, camera_qos("reliable"))

    def on_frame(self, msg: CompressedImage) -> None:
        t0 = time.perf_counter()
        rgb = compressed_to_rgb(msg)
        t1 = time.perf_counter()
        with torch.inference_mode():
            out = self.model([to_tensor(rgb).to(self.device)])[0]
        result = {k: v.cpu().numpy() for k, v in out.items()}
        t2 = time.perf_counter()
        detections = Detections(
            result["boxes"], result["scores"], result["labels"], 1e3 * (t1 - t0), 1e3 * (t2 - t1)
        )
        self.publisher.publish(to_detection_array(msg.header, detections, 0.5, 100))


def main() -> None:
    config, checkpoint, device = sys.argv[1:4]
    spin_node(lambda: OffloadNode(config, checkpoint, device), sys.argv)


if __name__ == "__main__":
    main()
