"""Head latency per backend (encoder, then entropy coding on the CPU, per number of coding processes)
and a head process's peak RSS."""

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import torch

from sc2_split.benchmarks.models import BenchModel
from sc2_split.benchmarks.timing import Timing, measure, worker_counts
from sc2_split.codecs import make_codec
from sc2_split.codecs.channel_pool import ChannelPool


def encoders(bench: BenchModel) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Every head encoder this machine can run, by label."""
    from sc2_split.backends import available_backends
    from sc2_split.backends.onnxruntime import OnnxRuntimeBackend

    files = bench.files
    runs: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    runs["onnxruntime-cpu"] = OnnxRuntimeBackend(files.onnx_path, files.metadata, "cpu")
    cpu_head = files.head
    runs["torch-cpu"] = lambda frame: _torch(cpu_head, frame, "cpu")
    if torch.cuda.is_available():
        import copy

        gpu_head = copy.deepcopy(files.head).cuda()
        half_head = copy.deepcopy(files.head).half().cuda()
        runs["torch-cuda-fp32"] = lambda frame: _torch(gpu_head, frame, "cuda")
        runs["torch-cuda-fp16"] = lambda frame: _torch(half_head, frame, "cuda")
        try:
            runs["onnxruntime-cuda"] = OnnxRuntimeBackend(files.onnx_path, files.metadata, "cuda")
        except RuntimeError as exc:
            print(f"onnxruntime-cuda: not measured ({exc})")
    if "tensorrt" in available_backends():
        runs["tensorrt-fp16"] = _tensorrt(bench)
    return runs


def _torch(head: torch.nn.Module, frame: np.ndarray, device: str) -> np.ndarray:
    with torch.inference_mode():
        return head(torch.from_numpy(frame).to(device)).cpu().numpy()


def _tensorrt(bench: BenchModel) -> Callable[[np.ndarray], np.ndarray]:
    from sc2_split.backends.tensorrt import TensorRTBackend
    from sc2_split.export.tensorrt import build_engine

    files = bench.files
    engine = files.onnx_path.with_name("head.engine")
    build_engine(files.onnx_fp16_path, engine, True, 2048, files.onnx_path.with_name("timing.cache"))
    return TensorRTBackend(engine, files.metadata)


def bench_head(
    bench: BenchModel, frames: list[np.ndarray], repeats: int, encode_workers: list[int]
) -> list[dict]:
    """Encoder and entropy-coding time per backend and number of coding processes (0: in process),
    each median over `repeats` runs of one frame."""
    metadata = bench.files.metadata
    name, tables = metadata.codecs[0], metadata.entropy_tables
    latents = {label: (run, [run(f) for f in frames]) for label, run in encoders(bench).items()}
    codings = {}
    for workers in worker_counts(encode_workers) if name == "entropy" else [0]:
        with ChannelPool(tables, workers) if workers else contextlib.nullcontext() as pool:
            codec = make_codec(name, tables, pool)  # version 1 on a pool, else 2
            codings[workers] = {
                label: measure(codec.encode, xs, repeats) for label, (_, xs) in latents.items()
            }
    rows = []
    for label, (run, _) in latents.items():
        encode = measure(run, frames, repeats)
        for workers, coding in codings.items():
            total = Timing(
                encode.median_ms + coding[label].median_ms, encode.p90_ms + coding[label].p90_ms, repeats
            )
            rows.append(
                {
                    "model": bench.name,
                    "backend": label,
                    "codec": name,
                    "encode_workers": workers,
                    "encoder": encode,
                    "codec_time": coding[label],
                    "total": total,
                }
            )
    return rows


# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across execve, so a child started by
# this (large) benchmark process would report the parent's peak.
RSS_SCRIPT = """
import json, re, sys
import numpy as np
from sc2_split.backends import make_backend
from sc2_split.head import HeadPipeline
from sc2_split.head_metadata import HeadMetadata
meta_path, onnx_path, codec, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
metadata = HeadMetadata.load(meta_path)
backend = make_backend("onnxruntime", meta_path, metadata, model_file_path=onnx_path)
head = HeadPipeline(metadata, backend, codec)
rng = np.random.default_rng(0)
for _ in range(count):
    head(rng.integers(0, 256, (metadata.input_height, metadata.input_width, 3), dtype=np.uint8))
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({"peak_rss_mb": peak_kb / 1024,
                  "torch_imported": "torch" in sys.modules}))
"""


def head_process_rss(bench: BenchModel, frames: int = 20) -> dict:
    """Peak RSS of a fresh process that runs only the robot's head (ONNX Runtime, no torch)."""
    files = bench.files
    codec = files.metadata.codecs[0]
    command = [sys.executable, "-c", RSS_SCRIPT, str(files.metadata_path), str(files.onnx_path), codec]
    out = subprocess.run([*command, str(frames)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])
