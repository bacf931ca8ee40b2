"""What a training run may spend and where: phases end by the clock (a lent GPU is paid by the
minute), after a number of epochs, or at an iteration cap (the CPU smoke run), whichever comes first.

Learning rates scale with the effective batch (processes x batch per process) by the linear
scaling rule (Goyal et al., 2017): a phase's base rate is for REFERENCE_BATCH images a step, the
demo's batch on one GPU, so one GPU with the default batch trains exactly as before.
"""

import math
import time
from dataclasses import dataclass

import torch

from sc2_split.training.distributed import World

REFERENCE_BATCH = 16


@dataclass(frozen=True)
class RunSettings:
    """Shared by every phase of one run."""

    world: World
    batch_size: int  # images per process and step
    workers: int  # DataLoader processes per training process
    val_frames: int
    seed: int = 0
    # Stage 1 under bfloat16 autocast too. Off by default: for the demo's small students it was
    # slower on one H200 (12.8 against 15 steps/s; the casts cost more than the convolutions save).
    stage1_amp: bool = False

    @property
    def device(self) -> torch.device:
        return self.world.device

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.world.size

    def lr(self, base: float) -> float:
        """The learning rate for this run's effective batch, from the rate at REFERENCE_BATCH."""
        return base * self.effective_batch / REFERENCE_BATCH

    def describe(self, base: float) -> str:
        return (
            f"{self.world.size} process(es) x {self.batch_size} images = effective batch "
            f"{self.effective_batch}; lr {self.lr(base):.3g} ({base:.3g} at batch {REFERENCE_BATCH}, "
            "scaled linearly with the effective batch)"
        )


@dataclass(frozen=True)
class Budget:
    """How long one phase trains: whichever limit comes first."""

    seconds: float = math.inf
    max_iterations: int | None = None
    epochs: float | None = None


class Clock:
    """Progress through a budget, and the learning-rate factor it implies: linear warm-up over the
    first `warmup` of the budget, then a cosine decay that reaches zero when the budget is spent.
    `elapsed` is the time a resumed phase already trained."""

    def __init__(self, budget: Budget, elapsed: float = 0.0, warmup: float = 0.05) -> None:
        self.budget, self.warmup = budget, warmup
        self.start = time.monotonic() - elapsed

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def progress(self, iteration: int, epochs_done: float = 0.0) -> float:
        b = self.budget
        parts = [self.elapsed() / b.seconds]
        if b.max_iterations:
            parts.append(iteration / b.max_iterations)
        if b.epochs:
            parts.append(epochs_done / b.epochs)
        return max(parts)

    def lr_factor(self, progress: float) -> float:
        p = min(progress, 1.0)
        if p < self.warmup:
            return max(p / self.warmup, 0.01)
        return 0.5 * (1.0 + math.cos(math.pi * (p - self.warmup) / (1.0 - self.warmup)))
