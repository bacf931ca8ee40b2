"""What a training run may spend and where: phases end by the clock (a lent GPU is paid by the
minute) or by an iteration cap (the CPU smoke run), whichever comes first."""

import math
import time
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RunSettings:
    """Shared by every phase of one run."""

    device: torch.device
    batch_size: int
    workers: int  # DataLoader processes generating frames
    val_frames: int
    seed: int = 0


@dataclass(frozen=True)
class Budget:
    """How long one phase trains."""

    seconds: float
    max_iterations: int | None = None


class Clock:
    """Progress through a budget, and the learning-rate factor it implies: linear warm-up over the
    first `warmup` of the budget, then a cosine decay that reaches zero when the budget is spent."""

    def __init__(self, budget: Budget, warmup: float = 0.05) -> None:
        self.budget, self.warmup = budget, warmup
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def progress(self, iteration: int) -> float:
        by_time = self.elapsed() / self.budget.seconds
        cap = self.budget.max_iterations
        return max(by_time, iteration / cap) if cap else by_time

    def done(self, iteration: int) -> bool:
        return self.progress(iteration) >= 1.0

    def lr_factor(self, iteration: int) -> float:
        p = min(self.progress(iteration), 1.0)
        if p < self.warmup:
            return max(p / self.warmup, 0.01)
        return 0.5 * (1.0 + math.cos(math.pi * (p - self.warmup) / (1.0 - self.warmup)))
