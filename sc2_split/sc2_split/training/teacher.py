"""The teacher: trained here from an sc2bench config with the detection loss (the demo's
demo_teacher.yaml, from scratch), or given: a torchvision detection model by name with the user's
weights file (e.g. fasterrcnn_resnet50_fpn and a .pth), or the user's own config and checkpoint.

sc2bench builds ResNet backbones with frozen batch norm (right when starting from ImageNet weights,
which cannot be downloaded here); from scratch the backbone needs batch statistics, so training
swaps in BatchNorm2d (SyncBatchNorm across GPUs) and the trained statistics go back into frozen
batch norm for the checkpoint. The checkpoint holds fp16 weights: the repository's size budget.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import get_model
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.ops import FrozenBatchNorm2d

from sc2_split.evaluation.coco_map import evaluate_detector
from sc2_split.models.build import build_detector, create_detector, save_checkpoint
from sc2_split.models.config import load_model_config
from sc2_split.training.detection import DetectionLearner
from sc2_split.training.engine import train
from sc2_split.training.settings import Budget, RunSettings
from sc2_split.training.sources import Source, evaluation_batches

TEACHER = "demo_teacher"
_LR = 1e-3  # at the reference batch
_CLASSES_KEY = "roi_heads.box_predictor.cls_score.weight"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeacherSpec:
    """A trained teacher: `weights` with either a torchvision model name (`arch`, its builder's
    keyword arguments in `kwargs`) or an sc2bench `config`. The students' tails start from `weights`."""

    weights: Path
    config: Path | None = None
    arch: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.arch or (self.config.stem if self.config else self.weights.stem)

    def load(self) -> GeneralizedRCNN:
        """The teacher in eval mode, frozen; a weights file that does not fit is an error."""
        if self.arch is None:
            if self.config is None:
                raise ValueError("a teacher needs a torchvision model name or a model config")
            model = build_detector(load_model_config(self.config), self.weights)
        else:
            model = _torchvision_teacher(self.arch, self.weights, self.kwargs)
        for parameter in model.parameters():
            parameter.requires_grad = False
        return model.eval()


def train_teacher(
    out: Path, config: Path, train_source: Source, val: Source, budget: Budget, run: RunSettings, resume: bool
) -> dict[str, Any]:
    """Trains the config's detector with the detection loss; writes out/<config stem>.pt and returns
    its metrics (on the main process; the others wait for its evaluation)."""
    name, world = config.stem, run.world
    torch.manual_seed(run.seed)
    model = create_detector(load_model_config(config))
    _swap_norm(model, (FrozenBatchNorm2d,), _thawed)
    if world.size > 1 and run.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(run.device).train()
    torch.manual_seed(run.seed + world.rank)  # the detection heads' sampling: each rank its own
    log.info("teacher %s: %s", name, run.describe(_LR))
    state = train(
        name, DetectionLearner({name: model}, run.lr(_LR), run), train_source, budget, run, out, resume
    )
    figures: dict[str, Any] = {
        "iterations": state.iteration,
        "frames_seen": state.images,
        "train_seconds": round(state.elapsed, 1),
        "effective_batch": run.effective_batch,
        "lr": run.lr(_LR),
    }
    if world.main:
        _swap_norm(model, (nn.BatchNorm2d, nn.SyncBatchNorm), _frozen)
        path = out / f"{name}.pt"
        save_checkpoint(model.cpu(), path, fp16=lambda key: True)
        # Evaluated as it ships: the weights rounded to fp16.
        figures = {**evaluate(build_detector(load_model_config(config), path), name, val, run), **figures}
    world.barrier()
    return figures


def evaluate(model: nn.Module, name: str, val: Source, run: RunSettings) -> dict[str, float]:
    """COCO mAP on the validation source, with a progress bar."""
    started = time.monotonic()
    batches = evaluation_batches(val, run)
    metrics = evaluate_detector(model.to(run.device), batches, run.device, val.categories, f"eval {name}")
    log.info(
        "%s val (%d images): mAP %.3f, mAP@.5 %.3f (%.0f s)",
        *(name, len(batches.dataset), metrics["map"], metrics["map_50"], time.monotonic() - started),
    )
    return metrics


def parse_kwargs(text: str) -> dict[str, Any]:
    """--teacher-kwargs: a JSON object of the torchvision builder's keyword arguments."""
    kwargs = json.loads(text)
    if not isinstance(kwargs, dict):
        raise ValueError(f"teacher kwargs must be a JSON object, got {text!r}")
    return kwargs


def _torchvision_teacher(arch: str, weights: Path, kwargs: dict[str, Any]) -> GeneralizedRCNN:
    """torchvision's builder without downloads; the class count comes from the weights."""
    if not weights.is_file():
        raise FileNotFoundError(f"teacher weights not found: {weights}")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    state = state.get("model", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or _CLASSES_KEY not in state:
        raise ValueError(
            f"{weights}: not the state dict of a torchvision Faster R-CNN ({_CLASSES_KEY} missing)"
        )
    classes = state[_CLASSES_KEY].shape[0]
    model = get_model(arch, weights=None, weights_backbone=None, num_classes=classes, **kwargs)
    if not isinstance(model, GeneralizedRCNN):
        raise ValueError(f"{arch} is not a torchvision two-stage detector (GeneralizedRCNN)")
    _swap_norm(model, (nn.BatchNorm2d,), _frozen)  # as torchvision builds trained detectors
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{weights} does not fit {arch}: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    return model


def _swap_norm(
    model: nn.Module, kinds: tuple[type[nn.Module], ...], convert: Callable[[Any], nn.Module]
) -> None:
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) in kinds:
                setattr(module, name, convert(child))


def _thawed(frozen: FrozenBatchNorm2d) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(frozen.weight.numel(), eps=frozen.eps)
    with torch.no_grad():
        norm.weight.copy_(frozen.weight)
        norm.bias.copy_(frozen.bias)
        norm.running_mean.copy_(frozen.running_mean)
        norm.running_var.copy_(frozen.running_var)
    return norm


def _frozen(norm: nn.BatchNorm2d) -> FrozenBatchNorm2d:
    frozen = FrozenBatchNorm2d(norm.num_features, eps=norm.eps)
    frozen.weight.copy_(norm.weight.detach())
    frozen.bias.copy_(norm.bias.detach())
    frozen.running_mean.copy_(norm.running_mean)
    frozen.running_var.copy_(norm.running_var)
    return frozen.to(norm.weight.device)
