"""python -m sc2_split.benchmarks: head latency per backend, payload against JPEG/PNG, tail throughput.

Prints Markdown tables and writes every figure as JSON. The end-to-end ROS 2 benchmark is
`python -m sc2_split.benchmarks.ros_e2e`.
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from sc2_split.benchmarks.head import bench_head, head_process_rss
from sc2_split.benchmarks.models import prepare
from sc2_split.benchmarks.payload import bench_payload
from sc2_split.benchmarks.tail import bench_tail
from sc2_split.benchmarks.timing import Timing, machine, table
from sc2_split.data import sample_frames


def print_tables(results: dict[str, list]) -> None:
    head, rss, payload, tail = results["head"], results["head_rss"], results["payload"], results["tail"]
    if head:
        rows = [
            [r["model"], r["backend"], r["encode_workers"], r["encoder"], r["codec_time"], r["total"]]
            for r in head
        ]
        print(
            table(
                "Head per frame (encoder, then entropy coding on the CPU)",
                ["model", "backend", "encode workers", "encoder", "codec", "total"],
                rows,
            )
        )
        rows = [[r["model"], f"{r['peak_rss_mb']:.0f}", r["torch_imported"]] for r in rss]
        print(table("Head process (onnxruntime, CPU)", ["model", "peak RSS MB", "torch imported"], rows))
    if payload:
        rows = [[r["model"], r["payload"], f"{r['bytes']:,.0f}"] for r in payload]
        print(table("Bytes per frame", ["model", "payload", "bytes"], rows))
    if tail:
        rows = [
            [r["model"], r["device"], r["precision"], r["cuda_graphs"], r["decode_workers"], r["tail"],
             f"{r['decode_ms']:.1f}", f"{r['network_ms']:.1f}", f"{r['fps']:.1f}", f"{r['network_fps']:.1f}",
             f"{r['pipelined_fps']:.1f}"]
            for r in tail
        ]  # fmt: skip
        header = ["model", "device", "precision", "CUDA graphs", "decode workers", "decode + tail",
                  "decode ms", "network ms", "frames/s", "network frames/s",
                  "pipelined frames/s"]  # fmt: skip
        print(table("Tail per frame, batch 1: entropy decoding (CPU), then the network", header, rows))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sc2_split.benchmarks", description=__doc__)
    p.add_argument(
        "--models",
        nargs="+",
        default=["sc2_resnet50_fp"],
        help="bundled config names, each optionally NAME:CHECKPOINT",
    )
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--frames", type=int, default=4, help="distinct frames cycled through")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument(
        "--decode-workers",
        type=int,
        nargs="+",
        default=[0, 4],
        help="tail rows per number of entropy decoding processes (0: in process), capped at the cores",
    )
    p.add_argument(
        "--encode-workers",
        type=int,
        nargs="+",
        default=[0, 4],
        help="head rows per number of entropy coding processes (0: in process), capped at the cores",
    )
    parts = ["head", "payload", "tail"]
    p.add_argument("--parts", nargs="+", default=parts, choices=parts)
    p.add_argument("--json", type=Path, default=Path("out/benchmarks.json"))
    args = p.parse_args(argv)

    print(f"machine: {machine()}; frames {args.width}x{args.height}\n")
    frames = sample_frames(args.height, args.width, args.frames)
    results: dict[str, list] = {"head": [], "head_rss": [], "payload": [], "tail": []}
    for spec in args.models:
        bench = prepare(spec, args.height, args.width)
        if "head" in args.parts:
            results["head"] += bench_head(bench, frames, args.repeats, args.encode_workers)
            results["head_rss"].append({"model": bench.name, **head_process_rss(bench)})
        if "payload" in args.parts:
            results["payload"] += bench_payload(bench, frames)
        if "tail" in args.parts:
            results["tail"] += bench_tail(bench, frames, args.repeats, args.decode_workers)

    print_tables(results)

    args.json.parent.mkdir(parents=True, exist_ok=True)
    encode = lambda o: dataclasses.asdict(o) if isinstance(o, Timing) else str(o)  # noqa: E731
    args.json.write_text(json.dumps({"machine": machine(), **results}, default=encode, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
