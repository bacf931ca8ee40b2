"""One training loop for every phase (teacher, students, stage 2), in the shape of torchvision's
detection references: epochs of `train_one_epoch`, a progress bar and log lines with rate and ETA,
figures per epoch (history, plots), and a resumable state written after each epoch.

A phase stops by its budget (seconds, epochs or steps). Each process has its own clock, so under
DDP rank 0's reading is broadcast after every step: all ranks stop at the same step (a rank that
stopped alone would leave the others waiting in an all-reduce) and use the same learning rate.

A step's figures stay on the device: reading one waits for the GPU to finish, so they are summed
there and read once a second for the progress bar and once an epoch for the history, and the
host queues the next steps while the GPU computes.
"""

import itertools
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor
from tqdm import tqdm

from sc2_split.training.plots import plot_history
from sc2_split.training.settings import Budget, Clock, RunSettings
from sc2_split.training.sources import Source, training_batches

_LOG_EVERY_S = 20.0
_SHOW_EVERY_S = 1.0

log = logging.getLogger(__name__)


class Learner(Protocol):
    """A phase's models: what one step does, and what its resumable state holds."""

    def step(
        self, images: list[Tensor], targets: list[dict[str, Any]], lr_factor: float
    ) -> dict[str, Tensor]:
        """Trains on one batch; figures (detached scalars, on the device) keyed `model/kind` (kind:
        loss, distortion, bits)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class PhaseState:
    """Where a phase stands; saved after every epoch as OUT/<phase>.state.pt."""

    epoch: int = 0  # epochs begun before this sitting
    iteration: int = 0
    elapsed: float = 0.0
    images: int = 0  # seen by all processes together
    history: list[dict[str, float]] = field(default_factory=list)


def train(
    phase: str,
    learner: Learner,
    source: Source,
    budget: Budget,
    run: RunSettings,
    out: Path,
    resume: bool = False,
) -> PhaseState:
    """Trains until the budget is spent; with `resume`, goes on from OUT/<phase>.state.pt if there."""
    world = run.world
    state_path = out / f"{phase}.state.pt"
    state = PhaseState()
    if resume and state_path.is_file():
        saved = torch.load(state_path, map_location="cpu", weights_only=False)
        learner.load_state_dict(saved.pop("learner"))
        state = PhaseState(**saved)
        log.info("%s: resumed from %s at epoch %d, step %d", phase, state_path, state.epoch, state.iteration)
    clock = Clock(budget, state.elapsed)
    bar = _bar(phase, world.main)
    loader = training_batches(source, run, state.epoch)
    batches = iter(loader)
    progress = world.agree(clock.progress(state.iteration, state.epoch))
    while progress < 1.0:
        progress = train_one_epoch(learner, batches, len(loader), state, clock, progress, run, bar)
        state.elapsed = clock.elapsed()
        if world.main:
            torch.save({**asdict(state), "learner": learner.state_dict()}, _partial(state_path))
            _partial(state_path).replace(state_path)
            plot_history(phase, state.history, out / f"{phase}_curves.png")
    bar.close()
    del batches  # its worker processes
    log.info(
        "%s: %d steps, %d epoch(s), %d images in %.0f s (%s)",
        *(phase, state.iteration, state.epoch, state.images, state.elapsed, _last(state)),
    )
    return state


def train_one_epoch(
    learner: Learner,
    batches: Iterator[tuple[list[Tensor], list[dict[str, Any]]]],
    steps_per_epoch: int,
    state: PhaseState,
    clock: Clock,
    progress: float,
    run: RunSettings,
    bar: tqdm,
) -> float:
    """The next `steps_per_epoch` batches (this process's share of the epoch), or fewer where the
    budget ends; records the epoch's mean figures (over steps and processes) and returns the agreed
    progress."""
    world, epoch = run.world, state.epoch
    steps, sums, started = 0, dict[str, Tensor](), time.monotonic()
    last_log = last_show = started
    for images, targets in itertools.islice(batches, steps_per_epoch):
        figures = learner.step(images, targets, clock.lr_factor(progress))
        steps += 1
        state.iteration += 1
        state.images += len(images) * world.size
        for key, value in figures.items():
            sums[key] = sums[key] + value if key in sums else value
        progress = world.agree(clock.progress(state.iteration, epoch + steps / steps_per_epoch))
        bar.update(min(progress, 1.0) * 100 - bar.n)
        now = time.monotonic()
        if world.main and (steps == 1 or now - last_show >= _SHOW_EVERY_S or progress >= 1.0):
            last_show, shown = now, _short({key: float(value) for key, value in figures.items()})
            rate = state.images / max(clock.elapsed(), 1e-9)
            bar.set_postfix_str(f"epoch {epoch} {shown} {rate:.1f} img/s", refresh=False)
            if steps == 1 or now - last_log >= _LOG_EVERY_S or progress >= 1.0:
                last_log = now
                log.info(
                    "%s it %d, epoch %d, %.1f s, %.1f img/s: %s",
                    *(bar.desc, state.iteration, epoch, clock.elapsed(), rate, shown),
                )
        if progress >= 1.0:
            break
    means = world.mean({key: float(value) / max(steps, 1) for key, value in sums.items()})
    seconds = time.monotonic() - started
    state.history.append({"epoch": epoch, "steps": steps, "seconds": round(seconds, 1), **means})
    state.epoch += 1
    return progress


def _bar(phase: str, enabled: bool) -> tqdm:
    """Percent of the budget, so that the ETA holds whether seconds, epochs or steps bound it."""
    return tqdm(
        total=100.0,
        desc=phase,
        unit="%",
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}] {postfix}",
        disable=not enabled,
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
        dynamic_ncols=True,
    )


def _short(figures: dict[str, float]) -> str:
    return " ".join(f"{key} {value:.4g}" for key, value in figures.items())


def _last(state: PhaseState) -> str:
    return _short({k: v for k, v in state.history[-1].items() if "/" in k}) if state.history else "no steps"


def _partial(path: Path) -> Path:
    return path.with_suffix(".partial")
