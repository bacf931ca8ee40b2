"""Repeated timing with warm-up, reported as median and 90th percentile in milliseconds."""

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p90_ms: float
    runs: int

    def __str__(self) -> str:
        return f"{self.median_ms:8.2f} ms (p90 {self.p90_ms:.2f})"


T = TypeVar("T")


def measure(fn: Callable[[T], object], inputs: Sequence[T], repeats: int, warmup: int = 2) -> Timing:
    """Times `fn` on `inputs` in turn; `fn` must finish its work before returning (GPU work synced)."""
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    samples = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(inputs[i % len(inputs)])
        samples.append(1e3 * (time.perf_counter() - start))
    return Timing(float(np.median(samples)), float(np.percentile(samples, 90)), repeats)


def worker_counts(requested: list[int]) -> list[int]:
    """Numbers of coding processes asked for, each capped at this machine's cores (more only queue),
    without repeats."""
    cores = len(os.sched_getaffinity(0))
    return list(dict.fromkeys(min(n, cores) for n in requested))


def table(title: str, header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table, as printed and as pasted into docs/benchmarks.md."""
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def machine() -> str:
    """What the figures were measured on, for every absolute figure printed."""
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    cores = len(os.sched_getaffinity(0))
    return f"{platform.machine()}, {cores} CPU cores, {gpu}, torch {torch.__version__}"
