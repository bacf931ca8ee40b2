"""The teacher: demo_teacher.yaml's Faster R-CNN trained from scratch with the detection loss.

sc2bench builds ResNet backbones with frozen batch norm (right when starting from ImageNet weights,
which cannot be downloaded here); from scratch the backbone needs batch statistics, so training
swaps in BatchNorm2d and the trained statistics go back into frozen batch norm for the checkpoint.
The checkpoint holds fp16 weights (7.7 MB instead of 15.4): the repository's size budget.
"""

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.ops import FrozenBatchNorm2d

from sc2_split.evaluation.coco_map import evaluate_detector
from sc2_split.models.build import build_detector, create_detector, save_checkpoint
from sc2_split.models.config import bundled_config_path, load_model_config
from sc2_split.training.frames import detection_targets, frame_batches
from sc2_split.training.settings import Budget, Clock, RunSettings

TEACHER = "demo_teacher"
_LR, _WEIGHT_DECAY, _CLIP_NORM = 1e-3, 1e-4, 10.0
_LOG_EVERY_S = 20.0

log = logging.getLogger(__name__)


def train_teacher(out: Path, budget: Budget, run: RunSettings) -> dict[str, float]:
    """Trains and evaluates the teacher; writes out/demo_teacher.pt and returns its metrics."""
    model = create_detector(load_model_config(bundled_config_path(TEACHER)))
    _swap_norm(model, FrozenBatchNorm2d, _thawed)
    model.to(run.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=_LR, weight_decay=_WEIGHT_DECAY)
    clock, iteration, seen, last_log = Clock(budget), 0, 0, 0.0
    batches = frame_batches("train", 10**8, run.batch_size, run.workers, run.seed)
    for images, targets in batches:
        for group in optimizer.param_groups:
            group["lr"] = _LR * clock.lr_factor(iteration)
        inputs = [image.to(run.device, non_blocking=True).float().div_(255) for image in images]
        with torch.autocast(run.device.type, torch.bfloat16, enabled=run.device.type == "cuda"):
            losses = model(inputs, detection_targets(targets, run.device))
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), _CLIP_NORM)
        optimizer.step()
        iteration, seen = iteration + 1, seen + len(images)
        if clock.elapsed() - last_log >= _LOG_EVERY_S or clock.done(iteration):
            last_log = clock.elapsed()
            parts = " ".join(f"{k}={v.item():.3f}" for k, v in losses.items())
            log.info(
                "teacher it %d, %.0f s, %.1f img/s: loss %.3f (%s)",
                *(iteration, last_log, seen / last_log, loss.item(), parts),
            )
        if clock.done(iteration):
            break
    seconds = clock.elapsed()
    del batches
    _swap_norm(model, nn.BatchNorm2d, _frozen)
    path = out / f"{TEACHER}.pt"
    save_checkpoint(model.cpu(), path, fp16=lambda key: True)
    # Evaluated as it ships: the weights rounded to fp16.
    model = build_detector(load_model_config(bundled_config_path(TEACHER)), path)
    started = time.monotonic()
    metrics = evaluate_detector(model.to(run.device), _val_batches(run), run.device)
    log.info(
        "teacher val (%d frames): mAP %.3f, mAP@.5 %.3f (%.0f s)",
        *(run.val_frames, metrics["map"], metrics["map_50"], time.monotonic() - started),
    )
    return {**metrics, "iterations": iteration, "frames_seen": seen, "train_seconds": round(seconds, 1)}


def _val_batches(run: RunSettings) -> DataLoader:
    return frame_batches("val", run.val_frames, run.batch_size, run.workers, run.seed)


def _swap_norm(model: nn.Module, kind: type[nn.Module], convert: Callable[[Any], nn.Module]) -> None:
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is kind:
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
