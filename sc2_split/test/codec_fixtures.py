"""Entropy tables for the codec tests, without a model."""

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from sc2_split.codecs import EncodedTensor, EntropyTables
from sc2_split.codecs.varints import decode_varints, encode_varints


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


def lanes_mutations() -> dict[str, Callable[[EncodedTensor, np.random.Generator], EncodedTensor]]:
    """Malformed versions of a valid entropy version 2 payload, by name: each must be a PayloadError
    on the CPU and the GPU decoders ("flipped words" may, rarely, decode: a flip in the bits of an
    escaped value changes that value only)."""
    return {
        "bad lane size": _bad_lane_size,
        "wrong lane count": _wrong_lane_count,
        "wrong words bytes": _wrong_words_bytes,
        "wrong table bytes": _wrong_table_bytes,
        "moved table boundary": _moved_boundary,
        "lying lane table": _lying_lane_table,
        "impossible lane length": _impossible_lane_length,
        "flipped table bytes": _flipped_table_bytes,
        "truncated": lambda enc, rng: replace(enc, data=enc.data[: rng.integers(0, len(enc.data))]),
        "padded": lambda enc, rng: replace(enc, data=rng.bytes(int(rng.integers(1, 64))) + enc.data),
        "impossible state": _impossible_state,
        "extra lane word": _extra_lane_word,
        "flipped words": _flipped_words,
        "random words": _random_words,
        "chunk sizes": lambda enc, rng: replace(
            enc, chunk_sizes=tuple(int(v) for v in rng.integers(0, 2**32, int(rng.integers(0, 6))))
        ),
    }


def _lanes(enc: EncodedTensor) -> tuple[np.ndarray, np.ndarray]:
    """A valid payload's words and lane table (word counts)."""
    _, lanes, words_bytes, _ = enc.chunk_sizes
    counts = decode_varints(enc.data[words_bytes:], lanes, "lane table")
    return np.frombuffer(enc.data[:words_bytes], "<u2").copy(), counts


def _with_lanes(enc: EncodedTensor, words: np.ndarray, counts: np.ndarray) -> EncodedTensor:
    data, table = words.astype("<u2").tobytes(), encode_varints(counts)
    return replace(enc, data=data + table, chunk_sizes=(*enc.chunk_sizes[:2], len(data), len(table)))


def _bad_lane_size(enc: EncodedTensor, rng: np.random.Generator) -> EncodedTensor:
    size = int(rng.choice([0, 1, 32, 63, 65, 100, 3000, 2**17, 2**31, 2 * enc.chunk_sizes[0]]))
    return replace(enc, chunk_sizes=(size, *enc.chunk_sizes[1:]))


def _wrong_lane_count(enc: EncodedTensor, rng: np.random.Generator) -> EncodedTensor:
    size, lanes, *rest = enc.chunk_sizes
    return replace(enc, chunk_sizes=(size, int(rng.choice([0, lanes - 1, lanes + 1, 2**20 + 1])), *rest))


def _wrong_words_bytes(enc: EncodedTensor, rng: np.random.Generator) -> EncodedTensor:
    size, lanes, words_bytes, table_bytes = enc.chunk_sizes
    wrong = int(
        rng.choice([0, 1, words_bytes - 2, words_bytes - 1, words_bytes + 1, words_bytes + 2, 2**32 - 1])
    )
    return replace(enc, chunk_sizes=(size, lanes, wrong, table_bytes))


def _wrong_table_bytes(enc: EncodedTensor, rng: np.random.Generator) -> EncodedTensor:
    size, lanes, words_bytes, table_bytes = enc.chunk_sizes
    wrong = int(rng.choice([0, lanes - 1, table_bytes - 1, table_bytes + 1, 5 * lanes + 1, 2**32 - 1]))
    return replace(enc, chunk_sizes=(size, lanes, words_bytes, wrong))


def _moved_boundary(enc: EncodedTensor, rng: np.random.Generator) -> EncodedTensor:
    """The same data, its boundary between words and lane table moved: the sizes still add up."""
    size, lanes, words_bytes, table_bytes = enc.chunk_sizes
    moved = int(rng.choice([-4, -2, -1, 1, 2, 4]))
    return replace(enc, chunk_sizes=(size, lanes, words_bytes + moved, table_bytes - moved))


def _lying_lane_table(enc: EncodedTensor, rng: np.random.Generator) -> EncodedTensor:
    """The same total of words, split differently between two lanes (or one lane's count changed)."""
    words, counts = _lanes(enc)
    i, j = rng.integers(0, len(counts), 2)
    moved = int(rng.integers(1, 3))
    counts[i] += moved
    if i != j:
        counts[j] -= moved
    return _with_lanes(enc, words, counts)


def _impossible_lane_length(enc: EncodedTensor, rng: np.random.Generator) -> EncodedTensor:
    words, counts = _lanes(enc)
    counts[rng.integers(0, len(counts))] = rng.choice([0, 1, 2**34])
    return _with_lanes(enc, words, counts)


def _flipped_table_bytes(enc: EncodedTensor, rng: np.random.Generator) -> EncodedTensor:
    data = bytearray(enc.data)
    for at in rng.integers(enc.chunk_sizes[2], len(data), int(rng.integers(1, 4))):
        data[at] ^= int(rng.integers(1, 256))
    return replace(enc, data=bytes(data))


def _lane_starts(counts: np.ndarray) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(counts)[:-1]))


def _impossible_state(enc: EncodedTensor, rng: np.random.Generator) -> EncodedTensor:
    """A lane whose first state is below L: its first word zero."""
    words, counts = _lanes(enc)
    words[_lane_starts(counts)[rng.integers(0, len(counts))]] = 0
    return _with_lanes(enc, words, counts)


def _extra_lane_word(enc: EncodedTensor, rng: np.random.Generator) -> EncodedTensor:
    """A word more at the end of one lane: left over after its symbols."""
    words, counts = _lanes(enc)
    lane = int(rng.integers(0, len(counts)))
    end = int(_lane_starts(counts)[lane] + counts[lane])
    counts[lane] += 1
    return _with_lanes(enc, np.insert(words, end, rng.integers(0, 2**16)), counts)


def _flipped_words(enc: EncodedTensor, rng: np.random.Generator) -> EncodedTensor:
    words, counts = _lanes(enc)
    at = rng.integers(0, len(words), int(rng.integers(1, 9)))
    words[at] ^= rng.integers(1, 2**16, len(at)).astype(np.uint16)
    return _with_lanes(enc, words, counts)


def _random_words(enc: EncodedTensor, rng: np.random.Generator) -> EncodedTensor:
    """The lane table kept, every lane's words random."""
    words, counts = _lanes(enc)
    return _with_lanes(enc, rng.integers(0, 2**16, len(words)).astype(np.uint16), counts)
