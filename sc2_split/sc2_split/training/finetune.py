"""The students' stage 2 (SC2): decoder and tail fine-tuned with the detection loss.

The encoder and the entropy bottleneck stay as stage 1 left them, so the robot's head, its
bitstream and its rate do not change. Once its entropy coder is updated, sc2bench's bottleneck
feeds the decoder the quantized latent in training too, as the tail receives it. A stage-2
checkpoint holds the whole student; the fine-tuned part is stored in fp16 (7 MB instead of 15 for
the demo), the head's part exactly as stage 1 wrote it. It loads with stage 1's config.
"""

from pathlib import Path
from typing import Any

from torch import nn

from sc2_split.bundled import STAGE2_SUFFIX
from sc2_split.models.build import build_detector, save_checkpoint
from sc2_split.models.config import load_model_config
from sc2_split.models.split import BOTTLENECK
from sc2_split.training.detection import DetectionLearner
from sc2_split.training.engine import train
from sc2_split.training.precision import keep_float32
from sc2_split.training.settings import Budget, RunSettings
from sc2_split.training.sources import Source
from sc2_split.training.students import Student

# What the robot runs: frozen in stage 2.
HEAD_PREFIXES = (f"backbone.body.{BOTTLENECK}.encoder.", f"backbone.body.{BOTTLENECK}.entropy_bottleneck.")


def finetuned_name(student: str) -> str:
    """Checkpoint stem of a stage-2 student: e.g. demo_fp_beta4.5_stage2."""
    return f"{student}{STAGE2_SUFFIX}"


def finetune_students(
    out: Path,
    students: list[Student],
    source: Source,
    budget: Budget,
    run: RunSettings,
    lr: float = 3e-4,
    resume: bool = False,
) -> dict[str, dict[str, Any]]:
    """Fine-tunes OUT/<student>.pt for each student side by side on the same batches; writes
    OUT/<finetuned_name>.pt for each and returns their training figures by name. `lr` is the peak
    rate at the reference batch. `resume` goes on from OUT/stage2.state.pt, or where only
    OUT/<finetuned_name>.pt is there, starts from it (a second sitting with a fresh schedule)."""
    models = {}
    for s in students:
        name = finetuned_name(s.name)
        start = out / f"{name if resume and (out / f'{name}.pt').is_file() else s.name}.pt"
        models[name] = _prepare(build_detector(load_model_config(s.written_config(out)), start), run)
    state = train("stage2", DetectionLearner(models, run.lr(lr), run), source, budget, run, out, resume)
    trained = {}
    for s, (name, model) in zip(students, models.items(), strict=True):
        if run.world.main:
            save_checkpoint(
                model.cpu(), out / f"{name}.pt", fp16=lambda key: not key.startswith(HEAD_PREFIXES)
            )
        last = state.history[-1].get(f"{name}/loss", float("nan")) if state.history else float("nan")
        trained[name] = {
            "beta": s.beta,
            "stage": 2,
            "iterations": state.iteration,
            "resumed": resume,
            "lr": run.lr(lr),
            "effective_batch": run.effective_batch,
            "train_loss": round(last, 4),
        }
    run.world.barrier()
    return trained


def _prepare(model: nn.Module, run: RunSettings) -> nn.Module:
    """Trains everything after the head; the head's encoder runs in float32, as on the robot."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad = not name.startswith(HEAD_PREFIXES)
    keep_float32(getattr(model.backbone.body, BOTTLENECK).encoder)
    return model.to(run.device).train()
