"""Bytes per frame per codec, against JPEG (quality 75, 90) and PNG of the same frames."""

import numpy as np

from sc2_split.benchmarks.models import BenchModel
from sc2_split.codecs import make_codec
from sc2_split.image_files import encode_image


def bench_payload(bench: BenchModel, frames: list[np.ndarray]) -> list[dict]:
    head = bench.files.head
    import torch

    with torch.inference_mode():
        latents = [head(torch.from_numpy(f)).numpy() for f in frames]
    rows = []
    for name in bench.files.metadata.codecs:
        codec = make_codec(name, bench.files.metadata.entropy_tables)
        # What crosses the network: the coded data plus the self-describing header.
        sizes = [codec.encode(latent).nbytes for latent in latents]
        rows.append({"model": bench.name, "payload": name, "bytes": float(np.mean(sizes))})
    for label, fmt, quality in (("jpeg q75", "JPEG", 75), ("jpeg q90", "JPEG", 90), ("png", "PNG", None)):
        sizes = [len(encode_image(f, fmt, quality)) for f in frames]
        rows.append({"model": "-", "payload": label, "bytes": float(np.mean(sizes))})
    rows.append({"model": "-", "payload": "raw rgb8", "bytes": float(frames[0].nbytes)})
    return rows
