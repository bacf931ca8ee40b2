"""The robot's own detector for when the edge is gone: a whole detector's ONNX graph (written by
`python -m sc2_split.export.detector_onnx`) on ONNX Runtime. Torch-free, like the rest of the robot."""

import time

import numpy as np
import onnxruntime as ort
from PIL import Image

from sc2_split.frames import Detections


class LocalDetector:
    def __init__(self, model_file_path: str, providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> None:
        try:
            self.session = ort.InferenceSession(model_file_path, providers=list(providers))
        except Exception as exc:  # ONNX Runtime's own errors name no file
            raise ValueError(f"cannot load the local detector {model_file_path!r}: {exc}") from exc
        shape = self.session.get_inputs()[0].shape
        if len(shape) != 3 or not all(isinstance(s, int) for s in shape[1:]):
            raise ValueError(f"{model_file_path}: expected a (3, H, W) image input, got {shape}")
        self.height, self.width = shape[1], shape[2]
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, rgb: np.ndarray) -> Detections:
        """Detections of a uint8 RGB (H, W, 3) frame of any size, in its pixels."""
        started = time.perf_counter()
        height, width = rgb.shape[:2]
        if (height, width) != (self.height, self.width):
            rgb = np.asarray(Image.fromarray(rgb).resize((self.width, self.height), Image.BILINEAR))
        image = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255
        boxes, labels, scores = self.session.run(["boxes", "labels", "scores"], {self.input_name: image})
        scale = np.array([width / self.width, height / self.height] * 2, dtype=np.float32)
        return Detections(
            boxes=boxes.astype(np.float32) * scale,
            scores=scores.astype(np.float32),
            labels=labels.astype(np.int64),
            decode_ms=0.0,
            tail_ms=1e3 * (time.perf_counter() - started),
        )
