"""The models a benchmark runs: a bundled config with its checkpoint (if any), exported once."""

import tempfile
from dataclasses import dataclass
from pathlib import Path

from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

from sc2_split.export.head_files import HeadFiles, export_head
from sc2_split.models.build import build_detector
from sc2_split.models.config import bundled_config_path, checkpoint_path, load_model_config


@dataclass(frozen=True)
class BenchModel:
    name: str
    model: GeneralizedRCNN
    files: HeadFiles


def prepare(spec: str, height: int, width: int) -> BenchModel:
    """`spec` is a bundled config name, optionally `name:checkpoint` (a .pt path or a bundled
    checkpoint name); random weights otherwise."""
    name, _, checkpoint = spec.partition(":")
    config = bundled_config_path(name)
    ckpt = checkpoint_path(checkpoint)
    model = build_detector(load_model_config(config), ckpt)
    out = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    return BenchModel(name, model, export_head(model, name, config, ckpt, height, width, out, fp16=True))
