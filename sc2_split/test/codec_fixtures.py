"""Entropy tables for the codec tests, without a model."""

import numpy as np
from sc2_split.codecs import EntropyTables


def laplace_tables(channels: int, seed: int = 0) -> EntropyTables:
    """Tables like an updated EntropyBottleneck's: Laplace pmfs of varied widths plus an escape bin."""
    rng = np.random.default_rng(seed)
    half_widths = rng.integers(1, 9, size=channels)
    width = 2 * half_widths.max() + 3
    cdf = np.zeros((channels, width), dtype=np.int64)
    for c, half in enumerate(half_widths):
        pmf = np.exp(-np.abs(np.arange(-half, half + 1)) / rng.uniform(0.5, 3.0))
        pmf = np.append(pmf, 1e-3) / (pmf.sum() + 1e-3)
        counts = np.maximum(1, np.floor(pmf * 2**16).astype(np.int64))
        counts[np.argmax(counts)] += 2**16 - counts.sum()
        cdf[c, : len(counts) + 1] = np.concatenate(([0], np.cumsum(counts)))
    return EntropyTables(
        quantized_cdf=cdf,
        cdf_length=2 * half_widths + 3,
        offset=-half_widths,
        medians=rng.normal(size=channels).astype(np.float32),
    )


def escaping_latent(tables: EntropyTables, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A latent around the tables' medians, with escaped values in several channels."""
    rng = np.random.default_rng(seed)
    x = rng.laplace(scale=2.0, size=shape).astype(np.float32) + tables.medians.reshape(1, -1, 1, 1)
    x.reshape(-1)[::53] = 40.0
    x.reshape(-1)[7::61] = -3e5
    return x


def pool_latents(tables: EntropyTables, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Latents for a channel pool: `shape`, a larger batch of two (its shared memory grows), a small
    one (and shrinks), then one without escaped values."""
    channels = shape[1]
    shapes = [shape, (2, channels, 40, 56), (1, channels, 3, 5)]
    latents = [escaping_latent(tables, s, seed) for seed, s in enumerate(shapes)]
    latents.append(np.broadcast_to(tables.medians.reshape(1, -1, 1, 1), shape).astype(np.float32))
    return latents


def reference_symbols(latent: np.ndarray, tables: EntropyTables) -> np.ndarray:
    """compressai's `quantize(x, "symbols", medians)`, written out: round(x - median) half to even,
    as int32; what the entropy codec must code."""
    medians = tables.medians.reshape(1, -1, *([1] * (latent.ndim - 2)))
    return np.rint(latent.astype(np.float32) - medians).astype(np.int32)
