"""The students: SC2 head distillation (stage 1) of a bottleneck into the teacher's backbone.

A student is the teacher with conv1..layer1 replaced by an encoder, a bottleneck and a decoder;
everything after the bottleneck comes from the teacher (start_ckpt_file_path) and stays frozen.
Only the bottleneck learns, from the sum over layer1..layer3 of squared errors (MSE, sum) between
student and teacher features, plus beta times the latent's bits under the factorized prior;
compressai's auxiliary loss fits the prior's quantiles with an optimizer of its own. The 8-bit
variant learns without quantization or rate term, as sc2bench's SimpleBottleneck trains.

Stage 2 (the decoder and tail fine-tuned with the detection loss) is in finetune.py; it gives a
student a tail of its own, so only chosen rates get it (the repository's size budget).
All students learn side by side from the same batches, so teacher features and frames are computed
once per step.
"""

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812  (the torch idiom)

from sc2_split.evaluation.coco_map import Batch, evaluate_detector
from sc2_split.models.build import build_detector, create_detector, save_checkpoint, start_checkpoint_keys
from sc2_split.models.config import bundled_config_path, load_model_config
from sc2_split.models.split import BOTTLENECK, entropy_bottleneck
from sc2_split.training.frames import frame_batches
from sc2_split.training.settings import Budget, Clock, RunSettings
from sc2_split.training.teacher import TEACHER

FP_CONFIG, BQ8_CONFIG = "demo_fp", "demo_bq8"
_LR, _AUX_LR = 1e-3, 1e-3
_FIRST_FRAME = 10**8  # students see other training frames than the teacher did
# Students learn on crops: the loss is per pixel and fully convolutional, and smaller inputs give
# many more steps within the budget, which a bottleneck trained from scratch needs.
_CROP = 256
_LOG_EVERY_S = 20.0

log = logging.getLogger(__name__)


def student_name(beta: float | None) -> str:
    """Checkpoint stem: demo_fp_beta<beta> for an entropic student, demo_bq8 for the 8-bit one."""
    return BQ8_CONFIG if beta is None else f"{FP_CONFIG}_beta{beta:g}"


def student_config(beta: float | None, teacher_checkpoint: Path) -> dict[str, Any]:
    """The bundled student config, starting from this teacher checkpoint."""
    config = load_model_config(bundled_config_path(BQ8_CONFIG if beta is None else FP_CONFIG))
    config["kwargs"]["start_ckpt_file_path"] = str(Path(teacher_checkpoint).resolve())
    return config


@dataclass
class _Student:
    beta: float | None  # None: the 8-bit variant, trained without a rate term (as SC2 does)
    model: nn.Module
    optimizer: torch.optim.Optimizer
    aux_optimizer: torch.optim.Optimizer | None
    likelihoods: list[Tensor] = field(default_factory=list)
    distortion: float = 0.0  # running means over the last steps, for the log
    bits: float = 0.0


def train_students(
    out: Path, teacher_checkpoint: Path, betas: list[float | None], budget: Budget, run: RunSettings
) -> dict[str, dict[str, Any]]:
    """Trains one student per beta (None: the 8-bit variant) side by side; writes out/<name>.pt for
    each (only what the teacher does not provide) and returns their training figures by name."""
    device = run.device
    teacher = build_detector(load_model_config(bundled_config_path(TEACHER)), teacher_checkpoint).to(device)
    students = [_student(beta, teacher_checkpoint, device) for beta in betas]
    clock, iteration, last_log = Clock(budget), 0, 0.0
    generator = torch.Generator().manual_seed(run.seed)
    for images, _ in frame_batches("train", 10**8, run.batch_size, run.workers, run.seed, _FIRST_FRAME):
        factor = clock.lr_factor(iteration)
        with torch.no_grad():
            x = teacher.transform([image.to(device, non_blocking=True).float().div_(255) for image in images])
            x = _random_crop(x[0].tensors, generator)
            wanted = list(teacher.backbone.body(x).values())
        for student in students:
            for group in student.optimizer.param_groups:
                group["lr"] = _LR * factor
            _step(student, x, wanted)
        iteration += 1
        if clock.elapsed() - last_log >= _LOG_EVERY_S or clock.done(iteration):
            last_log = clock.elapsed()
            log.info("students it %d, %.0f s: %s", iteration, last_log, _summary(students))
        if clock.done(iteration):
            break
    log.info("students trained: %d steps of %d crops in %.0f s", iteration, run.batch_size, clock.elapsed())
    trained = {}
    for student in students:
        name = student_name(student.beta)
        if student.beta is not None:
            student.model.update()  # the entropy coder's tables, from the trained prior
        config = student_config(student.beta, teacher_checkpoint)
        save_checkpoint(student.model.cpu(), out / f"{name}.pt", provided=start_checkpoint_keys(config))
        trained[name] = {
            "beta": student.beta,
            "iterations": iteration,
            "train_distortion": round(student.distortion, 1),
            "train_bits": None if student.beta is None else round(student.bits, 1),
        }
    return trained


def evaluate_students(
    out: Path, teacher_checkpoint: Path, students: dict[str, float | None], run: RunSettings
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each student checkpoint out/<name>.pt (by name: its beta, None the 8-bit one), loaded as it
    ships, on the val split: mAP through the real bottleneck (entropy coded, or 8-bit quantized)
    and bytes per frame."""
    val = list(frame_batches("val", run.val_frames, run.batch_size, run.workers, run.seed))
    for name, beta in students.items():
        model = build_detector(student_config(beta, teacher_checkpoint), out / f"{name}.pt")
        yield name, _evaluate(model.to(run.device), val, run.device, name)


def _student(beta: float | None, teacher_checkpoint: Path, device: torch.device) -> _Student:
    model = create_detector(student_config(beta, teacher_checkpoint))
    bottleneck = getattr(model.backbone.body, BOTTLENECK)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(f"backbone.body.{BOTTLENECK}.")
    model.eval()  # frozen tail: batch norm keeps the teacher's statistics
    bottleneck.train()
    model.to(device)
    params = dict(bottleneck.named_parameters())
    main = [p for n, p in params.items() if not n.endswith("quantiles")]
    aux = [p for n, p in params.items() if n.endswith("quantiles")]
    student = _Student(
        beta,
        model,
        torch.optim.Adam(main, lr=_LR),
        torch.optim.Adam(aux, lr=_AUX_LR) if aux else None,
    )
    prior = entropy_bottleneck(model)
    if beta is not None:
        if prior is None:
            raise ValueError(f"{FP_CONFIG} has no entropy bottleneck to rate")
        prior.register_forward_hook(lambda _m, _i, output: student.likelihoods.append(output[1]))
    return student


def _step(student: _Student, x: Tensor, wanted: list[Tensor]) -> None:
    """One head-distillation step: distortion (+ beta * bits), then the prior's auxiliary loss."""
    student.likelihoods.clear()
    features = list(student.model.backbone.body(x).values())
    n = x.shape[0]
    distortion = sum(F.mse_loss(f, w, reduction="sum") for f, w in zip(features, wanted, strict=True)) / n
    loss = distortion
    if student.beta is not None:
        bits = -torch.log2(student.likelihoods[0]).sum() / n
        loss = loss + student.beta * bits
        student.bits = 0.9 * student.bits + 0.1 * bits.item() if student.bits else bits.item()
    student.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    student.optimizer.step()
    if student.aux_optimizer is not None:
        aux_loss = getattr(student.model.backbone.body, BOTTLENECK).aux_loss()
        student.aux_optimizer.zero_grad(set_to_none=True)
        aux_loss.backward()
        student.aux_optimizer.step()
    d = distortion.item()
    student.distortion = 0.9 * student.distortion + 0.1 * d if student.distortion else d


def _random_crop(x: Tensor, generator: torch.Generator) -> Tensor:
    """A square window (_CROP a side) of the batch, on the stride-32 grid so that features align."""
    _, _, h, w = x.shape
    top, left = (
        int(torch.randint(0, (size - _CROP) // 32 + 1, (), generator=generator)) * 32 for size in (h, w)
    )
    return x[..., top : top + _CROP, left : left + _CROP]


def _summary(students: list[_Student]) -> str:
    return "; ".join(
        f"{student_name(s.beta)} distortion {s.distortion:.0f}"
        + ("" if s.beta is None else f" bits {s.bits:.0f}")
        for s in students
    )


@torch.no_grad()
def _evaluate(model: nn.Module, val: list[Batch], device: torch.device, name: str) -> dict[str, float]:
    """mAP through the real bottleneck (entropy coded, or 8-bit quantized) and bytes per frame."""
    started = time.monotonic()
    metrics = evaluate_detector(model, val, device)
    prior = entropy_bottleneck(model)
    encoder = getattr(model.backbone.body, BOTTLENECK).encoder
    sizes = []
    for images, _ in val:
        latent = encoder(model.transform([image.to(device).float().div(255) for image in images])[0].tensors)
        if prior is None:  # one byte per element; the codec's header is left out
            sizes += [latent[0].numel()] * latent.shape[0]
        else:
            sizes += [len(string) for string in prior.compress(latent)]
    metrics["bytes_per_frame"] = sum(sizes) / len(sizes)
    metrics["latent_shape"] = list(latent.shape[1:])
    log.info(
        "%s val (%d frames): mAP %.3f, mAP@.5 %.3f, %.0f bytes/frame (%.0f s)",
        *(name, len(sizes), metrics["map"], metrics["map_50"], metrics["bytes_per_frame"]),
        time.monotonic() - started,
    )
    return metrics
