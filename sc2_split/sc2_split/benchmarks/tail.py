"""Tail throughput: decoding and the rest of the detector per frame, batch 1, fp32 and fp16."""

import numpy as np
import torch

from sc2_split.benchmarks.models import BenchModel
from sc2_split.benchmarks.timing import measure
from sc2_split.codecs.payload import EncodedTensor
from sc2_split.tail import TailPipeline


def bench_tail(bench: BenchModel, frames: list[np.ndarray], repeats: int) -> list[dict]:
    metadata = bench.files.metadata
    with torch.inference_mode():
        latents = [bench.files.head(torch.from_numpy(f)).numpy() for f in frames]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        # CPUs have no fast float16 arithmetic: autocast there is slower than fp32 by 10x.
        for precision in ("fp32", "fp16") if device == "cuda" else ("fp32",):
            pipeline = TailPipeline(bench.model, metadata.model_id, device, precision)
            codec = pipeline.codecs[metadata.codecs[0]]
            payloads = [codec.encode(latent) for latent in latents]
            count = repeats if device == "cuda" else max(3, repeats // 10)
            results = []

            def run(
                payload: EncodedTensor, pipeline: TailPipeline = pipeline, results: list = results
            ) -> None:
                results.append(pipeline(payload, metadata.model_id, metadata.geometry))

            timing = measure(run, payloads, count)
            # The split of each call: entropy decoding on the CPU, then the network on `device`.
            decode = float(np.median([r.decode_ms for r in results[-count:]]))
            network = float(np.median([r.tail_ms for r in results[-count:]]))
            rows.append(
                {
                    "model": bench.name,
                    "device": device,
                    "precision": precision,
                    "tail": timing,
                    "decode_ms": decode,
                    "network_ms": network,
                    "fps": 1e3 / timing.median_ms,
                    "network_fps": 1e3 / network,
                }
            )
    return rows
