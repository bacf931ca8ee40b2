"""Version 2 of the entropy codec, "lanes": the symbols of version 1 cut into independent rANS lanes.

Same symbols and tables as version 1 (codecs/entropy.py), laid out for parallel decoding: the symbols
in channel-row order (C, N*H*W), flattened, cut into lanes of `lane_size` consecutive symbols (a lane
may span channels), each lane its own rANS stream (codecs/rans.py) with its escaped values inside. So
a GPU decodes every lane of every frame at once (codecs/lanes_cuda.py), and the robot codes the lanes
on all its cores.

Payload: `chunk_sizes` = (lane_size, lane count); `data` = one little-endian uint16 word count per
lane, then the lanes' 16-bit words. The lane count follows from the model's shape and the lane size,
and every count is checked against the data before any lane is decoded.
"""

import math
from dataclasses import dataclass

import numpy as np

from sc2_split.codecs import rans
from sc2_split.codecs.payload import EncodedTensor, PayloadError, check_length

VERSION = 2
MIN_LANE_SIZE, MAX_LANE_SIZE = 64, 4096
# Bytes a lane should carry at the tables' expected rate: its table entry and final state (about 5
# bytes) then cost about 1%.
TARGET_LANE_BYTES = 512
MAX_LANES = 1 << 20
MAX_PRECISION = 16  # 16-bit words: the scale bits must not exceed them
WORD_BYTES = 2


def expected_bits(cdf: np.ndarray, cdf_length: np.ndarray, precision: int) -> float:
    """Bits per symbol the tables expect, their entropy averaged over channels."""
    bits = []
    for row, length in zip(cdf, cdf_length, strict=True):
        p = np.diff(row[:length]).astype(np.float64) / 2**precision
        bits.append(float(-(p * np.log2(p)).sum()))
    return float(np.mean(bits))


def lane_size_for(bits_per_symbol: float) -> int:
    """The power of two from MIN_LANE_SIZE to MAX_LANE_SIZE whose lanes carry TARGET_LANE_BYTES or more."""
    wanted = 8 * TARGET_LANE_BYTES / max(bits_per_symbol, 1e-3)
    return int(min(MAX_LANE_SIZE, max(MIN_LANE_SIZE, 1 << math.ceil(math.log2(wanted)))))


@dataclass(frozen=True)
class LaneLayout:
    """Where each lane of a checked payload lies: words[bounds[i]:bounds[i + 1]] (uint16, the lane
    table included in `words`), `lane_size` symbols each but the last."""

    words: np.ndarray
    bounds: np.ndarray
    lane_size: int
    total: int


def lane_count(total: int, lane_size: int) -> int:
    return -(-total // lane_size)


def pack(scratch: np.ndarray, counts: np.ndarray, lane_size: int) -> tuple[bytes, tuple[int, int]]:
    """The data and chunk sizes of encoded lanes (rans.encode_lanes' output)."""
    words = rans.gather_lanes(scratch, counts, len(counts))
    return words.astype("<u2", copy=False).tobytes(), (lane_size, len(counts))


def check_lanes(enc: EncodedTensor, total: int) -> LaneLayout:
    """The lanes of a version 2 payload of `total` symbols, once its header and lane table are checked
    against the data: PayloadError otherwise."""
    if len(enc.chunk_sizes) != 2:
        raise PayloadError(
            "header",
            f"entropy version 2 payload has {len(enc.chunk_sizes)} chunk sizes, expected 2 "
            "(lane size, lane count)",
        )
    lane_size, lanes = enc.chunk_sizes
    if not MIN_LANE_SIZE <= lane_size <= MAX_LANE_SIZE or lane_size & (lane_size - 1):
        raise PayloadError(
            "header",
            f"lane size {lane_size} is not a power of two from {MIN_LANE_SIZE} to {MAX_LANE_SIZE}",
        )
    expected = lane_count(total, lane_size)
    if lanes != expected or lanes > MAX_LANES:
        raise PayloadError(
            "header",
            f"payload declares {lanes} lanes; {total} symbols in lanes of {lane_size} make {expected}"
            f" (at most {MAX_LANES})",
        )
    data = enc.data
    if len(data) < WORD_BYTES * lanes:
        raise PayloadError("truncated", f"entropy data is {len(data)} bytes, shorter than its lane table")
    if len(data) % WORD_BYTES:
        raise PayloadError("corrupt", f"entropy data is {len(data)} bytes, not whole 16-bit words")
    words = np.frombuffer(data, dtype="<u2")
    counts = words[:lanes].astype(np.int64)
    if lanes and (counts.min() < rans.FLUSH_WORDS or counts.max() > rans.max_lane_words(lane_size)):
        raise PayloadError(
            "corrupt",
            f"lane table has a lane of {int(counts.min())} or {int(counts.max())} words, expected "
            f"{rans.FLUSH_WORDS} to {rans.max_lane_words(lane_size)}",
        )
    bounds = np.empty(lanes + 1, np.int64)
    bounds[0] = lanes
    np.cumsum(counts, out=bounds[1:])
    bounds[1:] += lanes
    check_length(len(data), WORD_BYTES * int(bounds[-1]), "entropy data (its lane table and lanes)")
    return LaneLayout(words, bounds, lane_size, total)


def lane_error(status: np.ndarray) -> PayloadError:
    """The error of a frame whose lanes have these status codes (one at least not OK)."""
    bad = np.flatnonzero(status)
    lane = int(bad[0])
    text = rans.STATUS_TEXT.get(int(status[lane]), f"status {int(status[lane])}")
    return PayloadError(
        "corrupt", f"{len(bad)} of {len(status)} entropy lanes are corrupt; lane {lane}: {text}"
    )
