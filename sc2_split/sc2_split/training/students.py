"""The students: SC2 head distillation (stage 1) of a bottleneck into the teacher's backbone.

A student comes from an sc2bench config (the demo's demo_fp / demo_bq8, the published ResNet-50
entropic student sc2_resnet50_fp, or the user's own): the teacher with conv1..layer1 replaced by an
encoder, a bottleneck and a decoder. Everything after the bottleneck comes from the teacher's
weights (start_ckpt_file_path) and stays frozen. Only the bottleneck learns, from the sum over the
backbone's stages of squared errors (MSE, sum) between student and teacher features, plus beta
times the latent's bits under the factorized prior; compressai's auxiliary loss fits the prior's
quantiles (its gradient reaches only them) with an optimizer of its own. An 8-bit config learns
without quantization or rate term, as sc2bench's SimpleBottleneck trains.

Each student config is written to OUT/<config stem>.yaml, pointing at the teacher's weights and
taking its classes and image sizes: that file and OUT/<student>.pt are what the tail
(TailPipeline.from_config) and the export tool take. All students learn side by side from the same
batches, so teacher features and images are computed once per step.
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
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

from sc2_split.evaluation.coco_map import evaluate_detector
from sc2_split.models.build import build_detector, create_detector, save_checkpoint, start_checkpoint_keys
from sc2_split.models.config import load_model_config, write_model_config
from sc2_split.models.split import BOTTLENECK, entropy_bottleneck
from sc2_split.training.distributed import unwrap
from sc2_split.training.engine import train
from sc2_split.training.precision import autocast, keep_float32
from sc2_split.training.settings import Budget, RunSettings
from sc2_split.training.sources import Source, evaluation_batches
from sc2_split.training.teacher import TeacherSpec

FP_CONFIG, BQ8_CONFIG = "demo_fp", "demo_bq8"
_LR, _AUX_LR = 1e-3, 1e-3  # at the reference batch
# Students learn on crops: the loss is per pixel and fully convolutional, and smaller inputs give
# many more steps within the budget, which a bottleneck trained from scratch needs.
_CROP = 256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Student:
    """A student config (its source YAML) at one rate; beta None: an 8-bit config, no rate term."""

    config: Path
    beta: float | None

    @property
    def name(self) -> str:
        """Checkpoint stem: <config>_beta<beta> (e.g. demo_fp_beta4.5), the config's stem for 8-bit."""
        return self.config.stem if self.beta is None else f"{self.config.stem}_beta{self.beta:g}"

    def written_config(self, out: Path) -> Path:
        return out / f"{self.config.stem}.yaml"


def write_student_configs(
    out: Path,
    teacher: TeacherSpec,
    model: GeneralizedRCNN,
    students: list[Student],
    class_names: list[str] | None,
) -> None:
    """OUT/<config stem>.yaml for each student config: the teacher's weights, classes and sizes."""
    classes = model.roi_heads.box_predictor.cls_score.out_features
    if class_names is not None and len(class_names) > classes:
        raise ValueError(
            f"the data has category ids up to {len(class_names) - 1}; the teacher knows {classes} classes"
        )
    for source in {s.config for s in students}:
        kwargs: dict[str, Any] = {
            "start_ckpt_file_path": str(teacher.weights),
            "min_size": model.transform.min_size[0],
            "max_size": model.transform.max_size,
        }
        if load_model_config(source)["kwargs"].get("box_predictor") is None:
            kwargs["num_classes"] = classes
        note = (
            f"Student config written by python -m sc2_split.training from {source} (teacher {teacher.name})."
        )
        write_model_config(source, out / f"{source.stem}.yaml", kwargs, class_names, note)


@dataclass
class _Model:
    student: Student
    model: nn.Module
    body: nn.Module  # the backbone's body, under DDP when there are several processes
    optimizer: torch.optim.Optimizer
    aux_optimizer: torch.optim.Optimizer | None
    likelihoods: list[Tensor] = field(default_factory=list)


class _Distillation:
    """The engine's Learner for stage 1."""

    def __init__(self, teacher: GeneralizedRCNN, students: list[_Model], run: RunSettings) -> None:
        self.teacher, self.students, self.device, self.amp = teacher, students, run.device, run.stage1_amp
        self.lr = run.lr(_LR)
        self.generator = torch.Generator().manual_seed(run.seed)  # the same crops on every rank

    def step(
        self, images: list[Tensor], targets: list[dict[str, Any]], lr_factor: float
    ) -> dict[str, Tensor]:
        with torch.no_grad(), autocast(self.device, self.amp):
            x = self.teacher.transform(
                [image.to(self.device, non_blocking=True).float().div_(255) for image in images]
            )
            x = _random_crop(x[0].tensors, self.generator)
            wanted = list(self.teacher.backbone.body(x).values())
        figures = {}
        for s in self.students:
            for group in s.optimizer.param_groups:
                group["lr"] = self.lr * lr_factor
            figures.update(_step(s, x, wanted, self.amp))
        return figures

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"generator": self.generator.get_state()}
        for s in self.students:
            state[s.student.name] = {
                "model": unwrap(s.body).state_dict(),
                "optimizer": s.optimizer.state_dict(),
                "aux_optimizer": None if s.aux_optimizer is None else s.aux_optimizer.state_dict(),
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        for s in self.students:
            saved = state[s.student.name]
            unwrap(s.body).load_state_dict(saved["model"])
            s.optimizer.load_state_dict(saved["optimizer"])
            if s.aux_optimizer is not None:
                s.aux_optimizer.load_state_dict(saved["aux_optimizer"])


def train_students(
    out: Path,
    teacher: TeacherSpec,
    students: list[Student],
    source: Source,
    budget: Budget,
    run: RunSettings,
    class_names: list[str] | None = None,
    resume: bool = False,
) -> dict[str, dict[str, Any]]:
    """Trains the students side by side; writes OUT/<config stem>.yaml and OUT/<name>.pt for each
    (only what the teacher does not provide) and returns their training figures by name."""
    world = run.world
    model = teacher.load().to(run.device)
    if world.main:
        write_student_configs(out, teacher, model, students, class_names)
    world.barrier()
    log.info("students %s: %s", ", ".join(s.name for s in students), run.describe(_LR))
    torch.manual_seed(run.seed)  # the same initial bottlenecks at any number of processes
    trained = [_student(s, load_model_config(s.written_config(out)), run) for s in students]
    torch.manual_seed(run.seed + world.rank)  # the rate's quantization noise: each rank its own
    state = train("students", _Distillation(model, trained, run), source, budget, run, out, resume)
    figures = {}
    for s, last in zip(trained, _last_figures(state.history, students), strict=True):
        if world.main:
            if s.student.beta is not None:
                s.model.update()  # the entropy coder's tables, from the trained prior
            config = load_model_config(s.student.written_config(out))
            save_checkpoint(
                s.model.cpu(), out / f"{s.student.name}.pt", provided=start_checkpoint_keys(config)
            )
        figures[s.student.name] = {
            "beta": s.student.beta,
            "iterations": state.iteration,
            "effective_batch": run.effective_batch,
            "lr": run.lr(_LR),
            **last,
        }
    world.barrier()
    return figures


def evaluate_students(
    out: Path, students: dict[str, Path], val: Source, run: RunSettings
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each checkpoint OUT/<name>.pt with its config (by name), loaded as it ships, on the
    validation source: mAP through the real bottleneck (entropy coded, or 8-bit quantized) and
    bytes per image."""
    for name, config in students.items():
        model = build_detector(load_model_config(config), out / f"{name}.pt")
        yield name, _evaluate(model.to(run.device), val, run, name)


def _student(student: Student, config: dict[str, Any], run: RunSettings) -> _Model:
    model = create_detector(config)
    _check_tail_from_teacher(model, config, student)
    bottleneck = getattr(model.backbone.body, BOTTLENECK)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(f"backbone.body.{BOTTLENECK}.")
    model.eval()  # frozen tail: batch norm keeps the teacher's statistics
    bottleneck.train()
    keep_float32(bottleneck.encoder)
    prior = entropy_bottleneck(model)
    if prior is not None:
        keep_float32(prior)
    model.to(run.device)
    params = dict(bottleneck.named_parameters())
    main = [p for n, p in params.items() if not n.endswith("quantiles")]
    aux = [p for n, p in params.items() if n.endswith("quantiles")]
    s = _Model(
        student,
        model,
        run.world.wrap(model.backbone.body),
        torch.optim.Adam(main, lr=run.lr(_LR)),
        torch.optim.Adam(aux, lr=run.lr(_AUX_LR)) if aux else None,
    )
    if student.beta is not None:
        if prior is None:
            raise ValueError(
                f"{student.config} has no entropy bottleneck to rate; give it as the 8-bit config"
            )
        prior.register_forward_hook(lambda _m, _i, output: s.likelihoods.append(output[1]))
    return s


def _check_tail_from_teacher(model: nn.Module, config: dict[str, Any], student: Student) -> None:
    """sc2bench loads the start checkpoint leniently; a teacher whose weights do not cover the
    student's tail would leave it random, so that is an error here."""
    provided = start_checkpoint_keys(config)
    tail = [k for k in model.state_dict() if not k.startswith(f"backbone.body.{BOTTLENECK}.")]
    missing = [k for k in tail if k not in provided and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(
            f"the teacher's weights do not provide {len(missing)} weights of {student.config.name}'s tail "
            f"(e.g. {missing[:3]}): the student config must match the teacher's architecture"
        )


def _step(s: _Model, x: Tensor, wanted: list[Tensor], amp: bool) -> dict[str, Tensor]:
    """One head-distillation step: distortion (+ beta * bits, + the prior's auxiliary loss)."""
    s.likelihoods.clear()
    with autocast(x.device, amp):
        features = list(s.body(x).values())
    n = x.shape[0]
    distortion = (
        sum(F.mse_loss(f.float(), w.float(), reduction="sum") for f, w in zip(features, wanted, strict=True))
        / n
    )
    loss, figures = distortion, {f"{s.student.name}/distortion": distortion.detach()}
    if s.student.beta is not None:
        bits = -torch.log2(s.likelihoods[0]).sum() / n
        loss = loss + s.student.beta * bits
        figures[f"{s.student.name}/bits"] = bits.detach()
    if s.aux_optimizer is not None:
        # One backward: the auxiliary loss reaches only the quantiles, the rest only the others.
        loss = loss + getattr(s.model.backbone.body, BOTTLENECK).aux_loss()
        s.aux_optimizer.zero_grad(set_to_none=True)
    s.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    s.optimizer.step()
    if s.aux_optimizer is not None:
        s.aux_optimizer.step()
    return figures


def _random_crop(x: Tensor, generator: torch.Generator) -> Tensor:
    """A square window (_CROP a side, less for small images) of the batch, on the stride-32 grid so
    that features align."""
    _, _, h, w = x.shape
    side = min(_CROP, h // 32 * 32, w // 32 * 32)
    top, left = (
        int(torch.randint(0, (size - side) // 32 + 1, (), generator=generator)) * 32 for size in (h, w)
    )
    return x[..., top : top + side, left : left + side]


def _last_figures(history: list[dict[str, float]], students: list[Student]) -> list[dict[str, float | None]]:
    """Each student's figures of the last epoch, for metrics.json."""
    last = history[-1] if history else {}
    return [
        {
            "train_distortion": round(last.get(f"{s.name}/distortion", float("nan")), 1),
            "train_bits": None if s.beta is None else round(last.get(f"{s.name}/bits", float("nan")), 1),
        }
        for s in students
    ]


@torch.no_grad()
def _evaluate(model: nn.Module, val: Source, run: RunSettings, name: str) -> dict[str, Any]:
    """mAP through the real bottleneck (entropy coded, or 8-bit quantized) and bytes per image."""
    started, device = time.monotonic(), run.device
    metrics: dict[str, Any] = evaluate_detector(
        model, evaluation_batches(val, run), device, val.categories, f"eval {name}"
    )
    prior = entropy_bottleneck(model)
    encoder = getattr(model.backbone.body, BOTTLENECK).encoder
    sizes = []
    for images, _ in evaluation_batches(val, run):
        latent = encoder(model.transform([image.to(device).float().div(255) for image in images])[0].tensors)
        if prior is None:  # one byte per element; the codec's header is left out
            sizes += [latent[0].numel()] * latent.shape[0]
        else:
            sizes += [len(string) for string in prior.compress(latent)]
    metrics["bytes_per_frame"] = sum(sizes) / len(sizes)
    metrics["latent_shape"] = list(latent.shape[1:])
    log.info(
        "%s val (%d images): mAP %.3f, mAP@.5 %.3f, %.0f bytes/image (%.0f s)",
        *(name, len(sizes), metrics["map"], metrics["map_50"], metrics["bytes_per_frame"]),
        time.monotonic() - started,
    )
    return metrics
