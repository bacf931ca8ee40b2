"""python -m sc2_split.benchmarks.entropy: entropy version 1 (constriction, one stream per channel) and
version 2 (rANS lanes) side by side in one run: bytes, the robot's encode on 2 cores, CPU decode,
GPU decode at batch 1 and 16 and the CPU time it costs; then the ResNet-50 tail's frames/s with
version 2 decoded on the GPU.

Latents: the bundled demo student's on its 120 procedural test frames, and a ResNet-50-sized latent
(the sc2_resnet50_fp config with random weights at 800x1088: 1.29 M near-uniform symbols); or, on a
machine without the models' packages, those saved here by `--save-payloads`.
"""

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numba
import numpy as np
import torch

from sc2_split.benchmarks.tail import pipelined_fps
from sc2_split.benchmarks.timing import Timing, measure, table
from sc2_split.codecs import EncodedTensor, EntropyTables
from sc2_split.codecs.entropy import EntropyCodec
from sc2_split.frames import CodedFrame

ROBOT_CORES = 2
GPU_BATCH = 16
DEMO = ("demo_fp", "demo_fp_beta4.5_stage2")
RESNET50 = "sc2_resnet50_fp"


def machine() -> str:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    cores = len(os.sched_getaffinity(0))
    versions = f"torch {torch.__version__}, numba {numba.__version__}"
    return f"{platform.machine()}, {cores} CPU cores, {platform.processor() or 'CPU'}, {gpu}, {versions}"


def head_latents(config: str, checkpoint: str, frames: Sequence[np.ndarray]) -> tuple[EntropyTables, list]:
    """A bundled model's tables and its head's latents of `frames` (480x640 RGB)."""
    from sc2_split.models.build import build_detector
    from sc2_split.models.config import bundled_config_path, checkpoint_path, load_model_config
    from sc2_split.models.entropy_tables import tables_from_entropy_bottleneck
    from sc2_split.models.split import Head, entropy_bottleneck, image_geometry

    model = build_detector(load_model_config(bundled_config_path(config)), checkpoint_path(checkpoint)).eval()
    tables = tables_from_entropy_bottleneck(entropy_bottleneck(model))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    head = Head(model, image_geometry(model, 480, 640)).to(device).eval()
    with torch.inference_mode():
        return tables, [head(torch.from_numpy(f).to(device)).cpu().numpy() for f in frames]


def computed_cases(demo_frames: int, resnet50_frames: int) -> dict[str, tuple[EntropyTables, list]]:
    """The latents by case name: the demo student's of its first test frames, ResNet-50's of the
    sample frames."""
    from sc2_split.data import sample_frames
    from sc2_split.data.synthetic import frame

    cases = {}
    if demo_frames:
        frames = [frame("test", i)[0] for i in range(demo_frames)]
        cases[f"{DEMO[1]}, {demo_frames} test frames"] = head_latents(*DEMO, frames)
    if resnet50_frames:
        cases["ResNet-50 random weights"] = head_latents(
            RESNET50, "", sample_frames(480, 640, resnet50_frames)
        )
    return cases


def save_cases(path: Path, cases: dict[str, tuple[EntropyTables, list]]) -> None:
    """Each case's tables and version 1 payloads, for a machine without the models' packages."""
    arrays: dict[str, np.ndarray] = {}
    for k, (name, (tables, latents)) in enumerate(cases.items()):
        codec = EntropyCodec(tables, version=1)
        encs = [codec.encode(x) for x in latents]
        arrays |= {
            f"{k}/name": np.array(name),
            f"{k}/tables": np.array(json.dumps(tables.to_dict())),
            f"{k}/shape": np.array(latents[0].shape),
            f"{k}/sizes": np.array([e.chunk_sizes for e in encs]),
        }
        arrays |= {f"{k}/data{i}": np.frombuffer(e.data, np.uint8) for i, e in enumerate(encs)}  # fmt: skip
    np.savez(path, **arrays)


def load_cases(path: Path) -> dict[str, tuple[EntropyTables, list]]:
    """save_cases' latents, decoded: the very symbols of the latents they were coded from."""
    saved = np.load(path, allow_pickle=False)
    cases = {}
    for k in sorted({key.split("/")[0] for key in saved.files}, key=int):
        tables = EntropyTables.from_dict(json.loads(str(saved[f"{k}/tables"])))
        shape = tuple(int(n) for n in saved[f"{k}/shape"])
        codec = EntropyCodec(tables, version=1)
        latents = [
            codec.decode(EncodedTensor("entropy", 1, shape, "float32", saved[f"{k}/data{i}"].tobytes(),
                                       chunk_sizes=tuple(int(n) for n in sizes)), shape)
            for i, sizes in enumerate(saved[f"{k}/sizes"])
        ]  # fmt: skip
        cases[str(saved[f"{k}/name"])] = (tables, latents)
    return cases


def process_ms(fn: Callable[[], object], runs: int) -> float:
    """CPU time (all threads of this process) per run of `fn`, in ms."""
    start = time.process_time()
    for _ in range(runs):
        fn()
    return 1e3 * (time.process_time() - start) / runs


def bench_codecs(name: str, tables: EntropyTables, latents: list[np.ndarray], repeats: int) -> list[dict]:
    """One row per version: bytes, encode on ROBOT_CORES threads, CPU decode, and for version 2 the
    GPU decoder at batch 1 and GPU_BATCH."""
    shape = latents[0].shape
    rows = []
    for version in (1, 2):
        codec = EntropyCodec(tables, version=version)
        numba.set_num_threads(min(ROBOT_CORES, numba.config.NUMBA_NUM_THREADS))
        encode = measure(codec.encode, latents, repeats)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        payloads = [codec.encode(x) for x in latents]
        decode = measure(lambda enc, c=codec: c.decode(enc, shape), payloads, repeats)
        row = {
            "latent": name, "version": version, "symbols": int(np.prod(shape)), "frames": len(latents),
            "lane_size": codec.lane_size if version == 2 else None,
            "bytes": float(np.mean([e.nbytes for e in payloads])),
            "encode_2_cores": encode, "cpu_decode": decode, "cpu_decode_threads": numba.get_num_threads(),
        }  # fmt: skip
        if version == 2 and torch.cuda.is_available():
            row |= bench_gpu(codec, payloads, shape, repeats)
        rows.append(row)
    return rows


def bench_gpu(codec: EntropyCodec, payloads: list[EncodedTensor], shape: tuple, repeats: int) -> dict:
    """GPU decode per frame, header checks included, at batch 1 and GPU_BATCH; CPU time per frame."""
    from sc2_split.codecs.lanes_cuda import GpuLanesDecoder

    gpu = GpuLanesDecoder(codec.tables)
    expected = [codec.decode(enc, shape) for enc in payloads[:GPU_BATCH]]

    def decode(batch: Sequence[EncodedTensor]) -> torch.Tensor:
        layouts = [codec.lane_layout(enc, shape) for enc in batch]
        latents, errors = gpu.decode_to_tensor(layouts, shape, "cuda")
        assert not any(errors), errors
        return latents

    got = decode(payloads[:GPU_BATCH]).cpu().numpy()
    same = all(got[i : i + 1].tobytes() == x.tobytes() for i, x in enumerate(expected))
    batches = [[payloads[(i + k) % len(payloads)] for k in range(GPU_BATCH)] for i in range(4)]
    one = measure(lambda enc: decode([enc]), payloads, repeats)
    runs = max(3, repeats // 4)
    many = measure(decode, batches, runs)
    return {
        "gpu_decode_batch1": one,
        "gpu_decode_per_frame_batch16": Timing(many.median_ms / GPU_BATCH, many.p90_ms / GPU_BATCH, runs),
        "gpu_cpu_ms_per_frame_batch1": process_ms(lambda: decode([payloads[0]]), repeats),
        "gpu_cpu_ms_per_frame_batch16": process_ms(lambda: decode(batches[0]), runs) / GPU_BATCH,
        "gpu_equals_cpu": same,
    }


def bench_resnet50_tail(frames_count: int, repeats: int) -> list[dict]:
    """The ResNet-50 tail (fp16, CUDA graphs), batch 1, no decoding processes: each version's frames/s,
    sequential and pipelined (the next frame decoded while the network runs)."""
    from sc2_split.data import sample_frames
    from sc2_split.models.build import build_detector, model_id
    from sc2_split.models.config import bundled_config_path, load_model_config
    from sc2_split.models.entropy_tables import tables_from_entropy_bottleneck
    from sc2_split.models.split import Head, entropy_bottleneck, image_geometry
    from sc2_split.tail import TailPipeline

    model = build_detector(load_model_config(bundled_config_path(RESNET50)), None).eval()
    geometry = image_geometry(model, 480, 640)
    tables = tables_from_entropy_bottleneck(entropy_bottleneck(model))
    with torch.inference_mode():
        head = Head(model, geometry).cuda().eval()
        latents = [
            head(torch.from_numpy(f).cuda()).cpu().numpy() for f in sample_frames(480, 640, frames_count)
        ]
    name = model_id(RESNET50, model)
    rows = []
    with TailPipeline(model, name, "cuda", "fp16", cuda_graphs=True) as tail:
        for version in (1, 2):
            codec = EntropyCodec(tables, version=version)
            frames = [CodedFrame(codec.encode(x), geometry, name) for x in latents]
            results: list = []
            timing = measure(lambda f, out=results: out.append(tail(f)), frames, repeats)
            rows.append({
                "model": RESNET50, "version": version, "decode": "GPU" if version == 2 else "CPU, in process",
                "decode_ms": float(np.median([r.decode_ms for r in results[-repeats:]])),
                "network_ms": float(np.median([r.tail_ms for r in results[-repeats:]])),
                "fps": 1e3 / timing.median_ms, "pipelined_fps": pipelined_fps(tail, frames, repeats),
            })  # fmt: skip
    return rows


def print_tables(results: dict) -> None:
    def ms(row: dict, key: str) -> str:
        return f"{row[key].median_ms:.3f}" if key in row else "-"

    def cpu(row: dict, key: str) -> str:
        return f"{row[key]:.3f}" if key in row else "-"

    rows = [
        [r["latent"], r["version"], f"{r['symbols']:,}", r["frames"], r["lane_size"] or "-",
         f"{r['bytes']:,.0f}", ms(r, "encode_2_cores"), ms(r, "cpu_decode"), ms(r, "gpu_decode_batch1"),
         ms(r, "gpu_decode_per_frame_batch16"), cpu(r, "gpu_cpu_ms_per_frame_batch1"),
         cpu(r, "gpu_cpu_ms_per_frame_batch16"), r.get("gpu_equals_cpu", "-")]
        for r in results["codecs"]
    ]  # fmt: skip
    header = ["latent", "version", "symbols", "frames", "lane size", "bytes", "encode ms (2 cores)",
              f"CPU decode ms ({results['cpu_decode_threads']} threads)", "GPU decode ms, batch 1",
              f"GPU decode ms/frame, batch {GPU_BATCH}", "CPU ms/frame of GPU decode, batch 1",
              f"CPU ms/frame of GPU decode, batch {GPU_BATCH}", "GPU = CPU bit for bit"]  # fmt: skip
    print(table("Entropy version 1 and 2 per frame (median)", header, rows))
    if results["tail"]:
        rows = [[r["model"], r["version"], r["decode"], f"{r['decode_ms']:.2f}", f"{r['network_ms']:.2f}",
                 f"{r['fps']:.1f}", f"{r['pipelined_fps']:.1f}"] for r in results["tail"]]  # fmt: skip
        header = ["model", "version", "decode", "decode ms", "network ms", "frames/s", "pipelined frames/s"]
        print(table("ResNet-50 tail, batch 1, fp16, CUDA graphs, no decoding processes", header, rows))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sc2_split.benchmarks.entropy", description=__doc__)
    p.add_argument("--demo-frames", type=int, default=120, help="demo test frames (at most 120); 0: none")
    p.add_argument("--resnet50-frames", type=int, default=4, help="distinct ResNet-50 latents; 0: none")
    p.add_argument("--payloads", type=Path, help="the latents from --save-payloads, not from the models")
    p.add_argument("--save-payloads", type=Path, help="only save the latents' version 1 payloads there")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--tail", action="store_true", help="the ResNet-50 tail's frames/s (CUDA only)")
    p.add_argument("--json", type=Path, default=Path("out/entropy.json"))
    args = p.parse_args(argv)
    if args.save_payloads:
        save_cases(args.save_payloads, computed_cases(args.demo_frames, args.resnet50_frames))
        return 0

    print(f"machine: {machine()}\n", flush=True)
    results: dict = {"machine": machine(), "codecs": [], "tail": [],
                     "cpu_decode_threads": numba.config.NUMBA_NUM_THREADS}  # fmt: skip
    cases = (
        load_cases(args.payloads) if args.payloads else computed_cases(args.demo_frames, args.resnet50_frames)
    )
    for name, (tables, latents) in cases.items():
        results["codecs"] += bench_codecs(name, tables, latents, args.repeats)
    if args.tail and torch.cuda.is_available():
        results["tail"] = bench_resnet50_tail(max(1, args.resnet50_frames), args.repeats)
    print_tables(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    encode = lambda o: o.__dict__ if isinstance(o, Timing) else str(o)  # noqa: E731
    args.json.write_text(json.dumps(results, default=encode, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
