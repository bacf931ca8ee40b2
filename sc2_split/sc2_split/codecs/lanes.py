"""Version 2 of the entropy codec, "lanes": the symbols of version 1 cut into independent rANS lanes.

Same symbols and tables as version 1 (codecs/entropy.py), laid out for parallel decoding: the symbols
in channel-row order (C, N*H*W), flattened, cut into lanes of `lane_size` consecutive symbols (a lane
may span channels), each lane its own rANS stream (codecs/rans.py) with its escaped values inside. So
a GPU decodes every lane of every frame at once (codecs/lanes_cuda.py), and the robot codes the lanes
on all its cores.

Payload: `chunk_sizes` = (lane size, lane count, words bytes, lane table bytes); `data` = the lanes'
16-bit little-endian words end to end, then the lane table: each lane's word count as an unsigned
LEB128 varint (one or two bytes a lane; a uint16 table would cost 0.7% more on the demo student). The
last two sizes are the data's two parts in order, as version 1's are its chunks, so a cut or padded
payload is told "truncated" or "oversized" before anything in it is read. The lane count follows
from the model's shape and the lane size, and every count is checked against the data before any
lane is decoded.
"""

import math
from dataclasses import dataclass

import numpy as np

from sc2_split.codecs import rans
from sc2_split.codecs.payload import EncodedTensor, PayloadError, check_length
from sc2_split.codecs.varints import MAX_VARINT_BYTES, decode_varints, encode_varints

VERSION = 2
MIN_LANE_SIZE, MAX_LANE_SIZE = 64, 65536
# Bytes a lane carries at most at the tables' expected rate. Each lane costs about 5 bytes (its table
# entry, its final state), so lanes of 200 bytes cost about 2.5%, which the per-channel overhead of
# version 1 mostly offsets; longer lanes would leave a GPU idle (one thread decodes one lane).
TARGET_LANE_BYTES = 200
MAX_LANES = 1 << 20
MAX_PRECISION = 16  # 16-bit words: the scale bits must not exceed them
WORD_BYTES = 2
CHUNK_SIZES = ("lane size", "lane count", "words bytes", "lane table bytes")


def expected_bits(cdf: np.ndarray, cdf_length: np.ndarray, precision: int) -> float:
    """Bits per symbol the tables expect, their entropy averaged over channels."""
    bits = []
    for row, length in zip(cdf, cdf_length, strict=True):
        p = np.diff(row[:length]).astype(np.float64) / 2**precision
        bits.append(float(-(p * np.log2(p)).sum()))
    return float(np.mean(bits))


def lane_size_for(bits_per_symbol: float) -> int:
    """The largest power of two from MIN_LANE_SIZE to MAX_LANE_SIZE whose lanes carry at most
    TARGET_LANE_BYTES at `bits_per_symbol`."""
    wanted = 8 * TARGET_LANE_BYTES / max(bits_per_symbol, 1e-3)
    return int(min(MAX_LANE_SIZE, max(MIN_LANE_SIZE, 1 << math.floor(math.log2(wanted)))))


@dataclass(frozen=True)
class LaneLayout:
    """Where each lane of a checked payload lies: words[bounds[i]:bounds[i + 1]] (uint16), `lane_size`
    symbols each but the last."""

    words: np.ndarray
    bounds: np.ndarray
    lane_size: int
    total: int


def lane_count(total: int, lane_size: int) -> int:
    return -(-total // lane_size)


def pack(scratch: np.ndarray, counts: np.ndarray, lane_size: int) -> tuple[bytes, tuple[int, int, int, int]]:
    """The data and chunk sizes of encoded lanes (rans.encode_lanes' output)."""
    table = encode_varints(counts)
    words = rans.gather_lanes(scratch, counts).astype("<u2", copy=False).tobytes()
    return words + table, (lane_size, len(counts), len(words), len(table))


def check_lanes(enc: EncodedTensor, total: int) -> LaneLayout:
    """The lanes of a version 2 payload of `total` symbols, once its header and lane table are checked
    against the data: PayloadError otherwise."""
    if len(enc.chunk_sizes) != len(CHUNK_SIZES):
        raise PayloadError(
            "header",
            f"entropy version 2 payload has {len(enc.chunk_sizes)} chunk sizes, expected "
            f"{len(CHUNK_SIZES)} ({', '.join(CHUNK_SIZES)})",
        )
    lane_size, lanes, words_bytes, table_bytes = enc.chunk_sizes
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
    fewest, most = WORD_BYTES * rans.FLUSH_WORDS * lanes, WORD_BYTES * rans.max_lane_words(lane_size) * lanes
    if words_bytes % WORD_BYTES or not fewest <= words_bytes <= most:
        raise PayloadError(
            "header",
            f"lane words of {words_bytes} bytes cannot be {lanes} lanes of {lane_size} symbols: expected "
            f"an even size from {fewest} to {most} bytes",
        )
    if not lanes <= table_bytes <= MAX_VARINT_BYTES * lanes:
        raise PayloadError(
            "header",
            f"lane table of {table_bytes} bytes cannot hold {lanes} lanes' word counts: expected "
            f"{lanes} to {MAX_VARINT_BYTES * lanes} bytes",
        )
    data = enc.data
    check_length(
        len(data),
        words_bytes + table_bytes,
        "entropy data (the words and lane table bytes its header declares)",
    )
    counts = decode_varints(data[words_bytes:], lanes, "lane table")
    limit = rans.max_lane_words(lane_size)
    if lanes and (counts.min() < rans.FLUSH_WORDS or counts.max() > limit):
        raise PayloadError(
            "corrupt",
            f"lane table has a lane of {int(counts.min())} or {int(counts.max())} words, expected "
            f"{rans.FLUSH_WORDS} to {limit}",
        )
    bounds = np.zeros(lanes + 1, np.int64)
    np.cumsum(counts, out=bounds[1:])
    if WORD_BYTES * int(bounds[-1]) != words_bytes:
        raise PayloadError(
            "corrupt",
            f"lane table counts {int(bounds[-1])} words ({WORD_BYTES * int(bounds[-1])} bytes), but the "
            f"header declares {words_bytes} bytes of words",
        )
    words = np.frombuffer(data, dtype="<u2", count=int(bounds[-1]))
    return LaneLayout(words, bounds, lane_size, total)


def lane_error(status: np.ndarray) -> PayloadError:
    """The error of a frame whose lanes have these status codes (one at least not OK)."""
    bad = np.flatnonzero(status)
    lane = int(bad[0])
    text = rans.STATUS_TEXT.get(int(status[lane]), f"status {int(status[lane])}")
    return PayloadError(
        "corrupt", f"{len(bad)} of {len(status)} entropy lanes are corrupt; lane {lane}: {text}"
    )
