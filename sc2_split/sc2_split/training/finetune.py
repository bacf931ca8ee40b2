"""The students' stage 2 (SC2): decoder and tail fine-tuned with the detection loss.

The encoder and the entropy bottleneck stay as stage 1 left them, so the robot's head, its
bitstream and its rate do not change. Once its entropy coder is updated, sc2bench's bottleneck
feeds the decoder the quantized latent in training too, as the tail receives it. A stage-2
checkpoint holds the whole student; the fine-tuned part is stored in fp16 (7 MB instead of 15),
the head's part exactly as stage 1 wrote it.
"""

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sc2_split.bundled import STAGE2_SUFFIX
from sc2_split.models.build import build_detector, save_checkpoint
from sc2_split.models.split import BOTTLENECK
from sc2_split.training.frames import detection_targets, frame_batches
from sc2_split.training.settings import Budget, Clock, RunSettings
from sc2_split.training.students import student_config, student_name

_WEIGHT_DECAY, _CLIP_NORM = 1e-4, 10.0
_FIRST_FRAME = 2 * 10**8  # frames neither the teacher nor stage 1 saw
_LOG_EVERY_S = 20.0
# What the robot runs: frozen in stage 2.
HEAD_PREFIXES = (f"backbone.body.{BOTTLENECK}.encoder.", f"backbone.body.{BOTTLENECK}.entropy_bottleneck.")

log = logging.getLogger(__name__)


def finetuned_name(beta: float) -> str:
    """Checkpoint stem of a stage-2 student: demo_fp_beta<beta>_stage2."""
    return f"{student_name(beta)}{STAGE2_SUFFIX}"


def finetune_students(
    out: Path,
    teacher_checkpoint: Path,
    betas: list[float],
    budget: Budget,
    run: RunSettings,
    lr: float = 3e-4,
    resume: bool = False,
) -> dict[str, dict[str, Any]]:
    """Fine-tunes out/demo_fp_beta<beta>.pt for each beta side by side on the same batches; writes
    out/<finetuned_name>.pt for each and returns their training figures by name. `resume` starts
    from out/<finetuned_name>.pt instead: stage 2 longer than one sitting on a lent GPU allows."""
    start = finetuned_name if resume else student_name
    models = {
        beta: build_detector(student_config(beta, teacher_checkpoint), out / f"{start(beta)}.pt")
        for beta in betas
    }
    optimizers = {beta: _prepare(model, run.device, lr) for beta, model in models.items()}
    losses = dict.fromkeys(betas, 0.0)
    clock, iteration, last_log = Clock(budget), 0, 0.0
    for images, targets in frame_batches("train", 10**8, run.batch_size, run.workers, run.seed, _FIRST_FRAME):
        factor = clock.lr_factor(iteration)
        inputs = [image.to(run.device, non_blocking=True).float().div_(255) for image in images]
        wanted = detection_targets(targets, run.device)
        for beta, model in models.items():
            for group in optimizers[beta].param_groups:
                group["lr"] = lr * factor
            loss = _step(model, optimizers[beta], inputs, wanted, run.device)
            losses[beta] = 0.9 * losses[beta] + 0.1 * loss if iteration else loss
        iteration += 1
        if clock.elapsed() - last_log >= _LOG_EVERY_S or clock.done(iteration):
            last_log = clock.elapsed()
            summary = "; ".join(f"{finetuned_name(b)} loss {loss:.3f}" for b, loss in losses.items())
            log.info("stage 2 it %d, %.0f s: %s", iteration, last_log, summary)
        if clock.done(iteration):
            break
    log.info("stage 2: %d steps of %d frames in %.0f s", iteration, run.batch_size, clock.elapsed())
    trained = {}
    for beta, model in models.items():
        name = finetuned_name(beta)
        save_checkpoint(model.cpu(), out / f"{name}.pt", fp16=lambda key: not key.startswith(HEAD_PREFIXES))
        trained[name] = {"beta": beta, "stage": 2, "iterations": iteration, "resumed": resume, "lr": lr}
        trained[name]["train_loss"] = round(losses[beta], 4)
    return trained


def _prepare(model: nn.Module, device: torch.device, lr: float) -> torch.optim.Optimizer:
    """Trains everything after the head; the head's encoder runs outside autocast, in float32 as on
    the robot, so that the quantized latent the tail learns from is the one it will receive."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad = not name.startswith(HEAD_PREFIXES)
    model.to(device).train()
    encoder = getattr(model.backbone.body, BOTTLENECK).encoder
    encoder.forward = _without_autocast(encoder.forward)
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=lr, weight_decay=_WEIGHT_DECAY)


def _without_autocast(forward: Any) -> Any:
    def float32_forward(x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return forward(x.float())

    return float32_forward


def _step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: list[Tensor],
    targets: list[dict[str, Tensor]],
    device: torch.device,
) -> float:
    with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
        loss = sum(model(inputs, targets).values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], _CLIP_NORM)
    optimizer.step()
    return loss.item()
