"""The tail behind the served model's tensors: a batch of requests, from any robots, to their outputs.

Each frame is parsed and decoded on its own, so that a malformed one fails alone; frames whose
latents share a shape then run through the network as one batch, which is where the GPU's throughput
is. Decoding runs on this server's CPU (the TailPipeline's decode workers), the GPU entropy decoder
of the codecs replaces it where the pipeline has one.
"""

import time
from collections import defaultdict

import numpy as np

from sc2_split.frames import Detections
from sc2_split.geometry import ImageGeometry
from sc2_split.serving.protocol import batch_outputs, frame_from_request
from sc2_split.tail import TailPipeline


class BatchedTail:
    """One instance of the served model: a TailPipeline on one device."""

    def __init__(self, pipeline: TailPipeline) -> None:
        self.pipeline = pipeline

    def __call__(self, header: np.ndarray, payload: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs of a batch: `header` and `payload` are (B, 1) BYTES, as Triton stacks them."""
        results: list[Detections | Exception] = [ValueError("not run")] * len(header)
        groups: dict[tuple[int, ...], list[tuple[int, np.ndarray, ImageGeometry, float]]] = defaultdict(list)
        for i, (h, p) in enumerate(zip(header.reshape(-1), payload.reshape(-1), strict=True)):
            started = time.perf_counter()
            try:
                frame = frame_from_request(bytes(h), bytes(p))
                latent = self.pipeline.decode(frame)
            except Exception as exc:  # this frame's fault, or this frame's failure: never the batch's
                results[i] = exc
                continue
            decode_ms = 1e3 * (time.perf_counter() - started)
            groups[latent.shape].append((i, latent, frame.geometry, decode_ms))
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
            for (i, _, _, decode_ms), result in zip(members, found, strict=True):
                results[i] = Detections(**result, decode_ms=decode_ms, tail_ms=tail_ms)
        return batch_outputs(results)
