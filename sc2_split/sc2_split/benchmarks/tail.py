"""Tail throughput: decoding and the rest of the detector per frame, batch 1, fp32 and fp16, with and
without CUDA graphs, per number of entropy decoding processes; and pipelined, the next frame
decoded while the network runs."""

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from sc2_split.benchmarks.models import BenchModel
from sc2_split.benchmarks.timing import measure, worker_counts
from sc2_split.frames import CodedFrame
from sc2_split.head_metadata import HeadMetadata
from sc2_split.tail import TailPipeline


def bench_tail(
    bench: BenchModel, frames: list[np.ndarray], repeats: int, decode_workers: list[int]
) -> list[dict]:
    metadata = bench.files.metadata
    with torch.inference_mode():
        latents = [bench.files.head(torch.from_numpy(f)).numpy() for f in frames]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        count = repeats if device == "cuda" else max(3, repeats // 10)
        # CPUs have no fast float16 arithmetic: autocast there is slower than fp32 by 10x.
        for precision in ("fp32", "fp16") if device == "cuda" else ("fp32",):
            for graphs in (False, True) if device == "cuda" else (False,):
                for workers in worker_counts(decode_workers):
                    with TailPipeline(
                        bench.model,
                        metadata.model_id,
                        device,
                        precision,
                        decode_workers=workers,
                        cuda_graphs=graphs,
                    ) as tail:
                        row = bench_pipeline(tail, latents, metadata, count)
                    rows.append(
                        {"model": bench.name, "device": device, "precision": precision, "cuda_graphs": graphs}
                        | row
                    )
    return rows


def bench_pipeline(
    pipeline: TailPipeline, latents: list[np.ndarray], metadata: HeadMetadata, count: int
) -> dict:
    """One pipeline's figures: per frame (decode, then the network) and pipelined frames/s."""
    codec = pipeline.codecs[metadata.codecs[0]]
    frames = [CodedFrame(codec.encode(latent), metadata.geometry, metadata.model_id) for latent in latents]
    results = []

    def run(frame: CodedFrame) -> None:
        results.append(pipeline(frame))

    timing = measure(run, frames, count)
    # The split of each call: entropy decoding on the CPU, then the network on the pipeline's device.
    decode = float(np.median([r.decode_ms for r in results[-count:]]))
    network = float(np.median([r.tail_ms for r in results[-count:]]))
    return {
        "decode_workers": 0 if pipeline.decode_pool is None else len(pipeline.decode_pool.pids),
        "tail": timing,
        "decode_ms": decode,
        "network_ms": network,
        "fps": 1e3 / timing.median_ms,
        "network_fps": 1e3 / network,
        "pipelined_fps": pipelined_fps(pipeline, frames, count),
    }


def pipelined_fps(pipeline: TailPipeline, frames: list[CodedFrame], count: int) -> float:
    """Frames/s, still batch 1 through the network, with frame n + 1 decoded on a second thread while
    the network runs frame n (a queue of one frame)."""
    with ThreadPoolExecutor(max_workers=1) as decoder:
        start = time.perf_counter()
        pending = decoder.submit(pipeline.decode, frames[0])
        for i in range(1, count + 1):
            latent = pending.result()
            if i < count:
                pending = decoder.submit(pipeline.decode, frames[i % len(frames)])
            pipeline.detect(latent, frames[(i - 1) % len(frames)].geometry)
        return count / (time.perf_counter() - start)
