"""Rate against accuracy on held-out synthetic frames: the demo students per codec and rate, against
full offloading of JPEG-compressed frames into the teacher."""

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.functional import to_tensor

from sc2_split.bundled import DEMO_DIR
from sc2_split.data.synthetic import coco_ground_truth, frames
from sc2_split.evaluation.coco_map import coco_detections, coco_map
from sc2_split.frames import CodedFrame
from sc2_split.image_files import encode_image
from sc2_split.models.build import build_detector, model_id
from sc2_split.models.config import bundled_config_path, load_model_config
from sc2_split.models.split import Head, image_geometry
from sc2_split.tail import TailPipeline

JPEG_QUALITIES = (10, 20, 30, 50, 75, 90)


@dataclass(frozen=True)
class Row:
    method: str  # "teacher" (full offloading) or a student's name
    payload: str  # "raw", "jpeg qNN" or a codec name
    bytes_per_frame: float
    map: float
    map_50: float


def demo_students() -> Iterator[tuple[str, str, Path]]:
    """(name, config name, checkpoint) of every bundled demo student."""
    for checkpoint in sorted(DEMO_DIR.glob("demo_fp_beta*.pt")):
        yield checkpoint.stem, "demo_fp", checkpoint
    for checkpoint in sorted(DEMO_DIR.glob("demo_bq8*.pt")):
        yield checkpoint.stem, "demo_bq8", checkpoint


def evaluate(count: int, split: str = "test", device: str = "cpu") -> list[Row]:
    data = list(frames(split, count))
    ground_truth = coco_ground_truth([target for _, target in data])
    rows = [*_offloading(data, ground_truth, device)]
    for name, config, checkpoint in demo_students():
        rows += _student(name, config, checkpoint, data, ground_truth, device)
    return rows


def _offloading(data: list, ground_truth: dict, device: str) -> Iterator[Row]:
    teacher = build_detector(
        load_model_config(bundled_config_path("demo_teacher")), DEMO_DIR / "demo_teacher.pt"
    )
    teacher.to(device)
    for quality in (None, *JPEG_QUALITIES):
        detections, sizes = [], []
        for image, target in data:
            if quality is None:
                received, size = image, image.nbytes
            else:
                jpeg = encode_image(image, quality=quality)
                received, size = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")), len(jpeg)
            with torch.inference_mode():
                output = teacher([to_tensor(received).to(device)])[0]
            detections += coco_detections(int(target["image_id"]), output)
            sizes.append(size)
        scores = coco_map(ground_truth, detections)
        payload = "raw" if quality is None else f"jpeg q{quality}"
        yield Row("teacher", payload, float(np.mean(sizes)), scores["map"], scores["map_50"])


def _student(
    name: str, config: str, checkpoint: Path, data: list, ground_truth: dict, device: str
) -> list[Row]:
    model = build_detector(load_model_config(bundled_config_path(config)), checkpoint)
    tail = TailPipeline(model, model_id(name, model), device)
    height, width = data[0][0].shape[:2]
    geometry = image_geometry(model, height, width)
    head = Head(model, geometry).to(device).eval()
    with torch.inference_mode():
        latents = [head(torch.from_numpy(image).to(device)).cpu().numpy() for image, _ in data]
    rows = []
    for codec_name, codec in tail.codecs.items():
        detections, sizes = [], []
        for latent, (_, target) in zip(latents, data, strict=True):
            encoded = codec.encode(latent)
            sizes.append(encoded.nbytes)
            result = tail(CodedFrame(encoded, geometry, tail.model_id))
            output = {
                "boxes": torch.from_numpy(result.boxes),
                "scores": torch.from_numpy(result.scores),
                "labels": torch.from_numpy(result.labels),
            }
            detections += coco_detections(int(target["image_id"]), output)
        scores = coco_map(ground_truth, detections)
        rows.append(Row(name, codec_name, float(np.mean(sizes)), scores["map"], scores["map_50"]))
    return rows
