"""The tail's network alone on batches of frames, as a served tail runs it: torchvision's heads
against the batched heads (models/batched_heads.py), in frames/s, with the GPU's kernel time per
batch, and whether both give the same detections bit for bit.

The latents are already on the tail's device, as the GPU decoder leaves them, so neither entropy
decoding nor a host-to-device copy is timed. Kernel time below wall time is the host's share: launches,
and waits on the device.

    python -m sc2_split.benchmarks.batched_tail --models demo_fp:demo_fp_beta4.5_stage2 \
        sc2_resnet50_fp --batches 1 8 32 64 --json heads_h200.json
"""

import argparse
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from sc2_split.benchmarks.models import BenchModel, prepare
from sc2_split.benchmarks.timing import machine, measure, table
from sc2_split.data import sample_frames
from sc2_split.tail import TailPipeline

Found = list[dict[str, np.ndarray]]
TOP_KERNELS = 15  # kept in the JSON per row


def bench_batches(
    bench: BenchModel, frames: list[np.ndarray], batches: list[int], repeats: int
) -> list[dict]:
    """A row per batch size and heads: each frame of a batch one of `frames`, in turn."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    geometry = bench.files.metadata.geometry
    with torch.inference_mode():
        latents = [bench.files.head(torch.tensor(f)).to(device) for f in frames]
    # A CPU tail runs torchvision's heads only, in float32 (CPUs have no fast float16 arithmetic).
    cuda = device == "cuda"
    precision = "fp16" if cuda else "fp32"
    rows, found = [], {}
    for heads in ("torchvision", "batched") if cuda else ("torchvision",):
        with TailPipeline(
            bench.model, bench.files.metadata.model_id, device, precision, batched_heads=heads == "batched"
        ) as tail:
            for size in batches:
                batch = [latents[i % len(latents)] for i in range(size)]
                run = partial(tail.detect_batch, batch, [geometry] * size)
                found[heads, size] = run()
                timing = measure(lambda _, run=run: run(), [None], repeats)
                row = {"model": bench.name, "device": device, "precision": precision, "batch": size}
                rows.append(
                    row
                    | {"heads": heads, "batch_ms": timing, "fps": 1e3 * size / timing.median_ms}
                    | (kernel_time(run) if cuda else {})
                )
    for row in rows:
        size = row["batch"]
        row["same_as_torchvision"] = same(found[row["heads"], size], found["torchvision", size])
    return rows


def kernel_time(run: Callable[[], object], runs: int = 5) -> dict:
    """The CUDA kernels and copies per call of `run`: their summed time and their number."""
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(runs):
            run()
        torch.cuda.synchronize()
    events = sorted(
        (e for e in prof.key_averages() if e.self_device_time_total > 0),
        key=lambda e: e.self_device_time_total,
        reverse=True,
    )
    return {
        "kernel_ms": sum(e.self_device_time_total for e in events) / 1e3 / runs,
        "kernels": sum(e.count for e in events) / runs,
        "largest": [  # where the device's time goes
            {"name": e.key[:120], "ms": e.self_device_time_total / 1e3 / runs, "count": e.count / runs}
            for e in events[:TOP_KERNELS]
        ],
    }


def same(found: Found, expected: Found) -> bool:
    """Equal boxes, scores and labels, frame by frame, bit for bit."""
    return len(found) == len(expected) and all(
        np.array_equal(a[key], b[key]) for a, b in zip(found, expected, strict=True) for key in a
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["demo_fp:demo_fp_beta4.5_stage2"])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--frames", type=int, default=8, help="distinct frames cycled through a batch")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--json", type=Path, default=Path("out/batched_tail.json"))
    args = p.parse_args(argv)

    print(f"machine: {machine()}\n")
    frames = sample_frames(args.height, args.width, args.frames)
    rows = []
    for spec in args.models:
        rows += bench_batches(prepare(spec, args.height, args.width), frames, args.batches, args.repeats)
    keys = ["model", "device", "precision", "batch", "heads", "batch_ms"]
    header = [*keys[:-1], "per batch", "frames/s", "kernel ms", "kernels", "same as torchvision's"]
    print(
        table(
            "The tail's network alone, latents on the device",
            header,
            [
                [r[k] for k in keys]
                + [f"{r['fps']:.0f}", f"{r.get('kernel_ms', 0):.1f}", f"{r.get('kernels', 0):.0f}"]
                + [r["same_as_torchvision"]]
                for r in rows
            ],
        )
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine(), "rows": rows}, default=vars, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
