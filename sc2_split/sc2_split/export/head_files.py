"""The files a robot's head runs from: head.onnx (and head_fp16.onnx) plus head.json."""

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

from sc2_split.codecs import CODECS
from sc2_split.export.onnx import export_onnx
from sc2_split.head_metadata import HeadMetadata
from sc2_split.models.build import model_id
from sc2_split.models.config import load_class_names
from sc2_split.models.entropy_tables import tables_from_entropy_bottleneck
from sc2_split.models.split import Head, entropy_bottleneck, image_geometry


@dataclass(frozen=True)
class HeadFiles:
    head: Head
    metadata: HeadMetadata
    metadata_path: Path
    onnx_path: Path
    onnx_fp16_path: Path | None


def export_head(
    model: GeneralizedRCNN,
    name: str,
    config_path: Path,
    checkpoint: Path | None,
    height: int,
    width: int,
    out: Path,
    fp16: bool = False,
) -> HeadFiles:
    geometry = image_geometry(model, height, width)
    head = Head(model, geometry).eval()
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "head.onnx"
    export_onnx(head, onnx_path)
    fp16_path = out / "head_fp16.onnx" if fp16 else None
    if fp16_path:
        export_onnx(head, fp16_path, half=True)
    with torch.inference_mode():
        latent_shape = tuple(head(torch.zeros((height, width, 3), dtype=torch.uint8)).shape)
    eb = entropy_bottleneck(model)
    metadata = HeadMetadata(
        model_id=model_id(name, model),
        input_height=height,
        input_width=width,
        geometry=geometry,
        image_mean=tuple(model.transform.image_mean),
        image_std=tuple(model.transform.image_std),
        latent_shape=latent_shape,
        codecs=tuple(c for c in CODECS if c != "entropy" or eb is not None),
        class_names=load_class_names(config_path),
        entropy_tables=None if eb is None else tables_from_entropy_bottleneck(eb),
        model_config=os.path.relpath(config_path.resolve(), out.resolve()),
        checkpoint=os.path.relpath(checkpoint.resolve(), out.resolve()) if checkpoint else "",
    )
    metadata_path = out / "head.json"
    metadata.save(metadata_path)
    return HeadFiles(head, metadata, metadata_path, onnx_path, fp16_path)
