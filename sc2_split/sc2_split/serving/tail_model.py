"""The tail behind the served model's tensors: a batch of requests, from any robots, to their outputs.

Each frame is parsed and checked on its own, so that a malformed one fails alone; the frames of
entropy version 2 are decoded together, in one GPU launch where the pipeline has the GPU decoder
(else on this server's CPU), and frames whose latents share a shape then run through the network as
one batch, which is where the GPU's throughput is.
"""

import time
from collections import defaultdict

import numpy as np

from sc2_split.frames import CodedFrame, Detections
from sc2_split.geometry import ImageGeometry
from sc2_split.serving.protocol import batch_outputs, frame_from_request
from sc2_split.tail import Latent, TailPipeline


class BatchedTail:
    """One instance of the served model: a TailPipeline on one device."""

    def __init__(self, pipeline: TailPipeline) -> None:
        self.pipeline = pipeline

    def __call__(self, header: np.ndarray, payload: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs of a batch: `header` and `payload` are (B, 1) BYTES, as Triton stacks them."""
        results: list[Detections | Exception] = [ValueError("not run")] * len(header)
        frames: dict[int, CodedFrame] = {}
        for i, (h, p) in enumerate(zip(header.reshape(-1), payload.reshape(-1), strict=True)):
            try:
                frames[i] = frame_from_request(bytes(h), bytes(p))
            except Exception as exc:  # this frame's fault: never the batch's
                results[i] = exc
        started = time.perf_counter()
        latents = self.pipeline.decode_batch(list(frames.values()))
        # The decoding time of the batch (one GPU launch for entropy version 2), shared by its frames.
        decode_ms = 1e3 * (time.perf_counter() - started)
        groups: dict[tuple[int, ...], list[tuple[int, Latent, ImageGeometry]]] = defaultdict(list)
        for (i, frame), latent in zip(frames.items(), latents, strict=True):
            if isinstance(latent, Exception):
                results[i] = latent
            else:
                groups[tuple(latent.shape)].append((i, latent, frame.geometry))
        for members in groups.values():
            started = time.perf_counter()
            try:
                found = self.pipeline.detect_batch([m[1] for m in members], [m[2] for m in members])
            except Exception as exc:
                for i, *_ in members:
                    results[i] = exc
                continue
            # The network's time of the batch, shared by its frames.
            tail_ms = 1e3 * (time.perf_counter() - started)
            for (i, _, _), result in zip(members, found, strict=True):
                results[i] = Detections(**result, decode_ms=decode_ms, tail_ms=tail_ms)
        return batch_outputs(results)
