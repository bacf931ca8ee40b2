"""The rANS coder of the lanes bitstream (codecs/lanes.py): one lane is one independent rANS stream.

32-bit state, 16-bit renormalization words, L = 2**16, the tables' precision as scale bits (16 for
compressai's tables). Escaped values follow the escape symbol as 4-bit bypass groups, as in
compressai's C++ rANS: the number of groups (unary in groups of 15), then the groups, low first.

`decode_lane` is plain Python on purpose: numba compiles the same source for the CPU (njit, here)
and as a CUDA device function (lanes_cuda.py), so that both decoders are bit-exact by construction.
"""

import numba
import numpy as np

STATE_LOW = 1 << 16  # L: the state stays in [L, 2**32) between symbols
WORD_BITS = 16
WORD_MASK = 0xFFFF
BYPASS_BITS = 4
BUCKET_BITS = 6  # the decoder's search starts from one of 64 slot ranges a channel (search_buckets)
BYPASS_MAX = (1 << BYPASS_BITS) - 1
# An escaped value is an int32 symbol minus an int32 offset, zigzagged: below 2**34, 9 groups of 4 bits.
MAX_BYPASS_GROUPS = 9
# Coder steps of one symbol at most: itself, one group for the count, MAX_BYPASS_GROUPS groups; each
# step writes at most one word, and the final state takes two.
MAX_STEPS_PER_SYMBOL = 2 + MAX_BYPASS_GROUPS
FLUSH_WORDS = 2
INT32_LIMIT = 1 << 31

OK = 0
OUT_OF_WORDS = 1  # the lane's words ran out before its symbols
NOT_AT_END = 2  # symbols done, but the state is not L or words are left: the lane is not what was coded
BAD_STATE = 3  # the lane's first state is below L
BAD_ESCAPE = 4  # an escaped value longer than 9 groups or beyond compressai's int32 symbols
BAD_VALUE = 5  # encoder: a latent value that is NaN, infinite or beyond int32 once rounded
STATUS_TEXT = {
    OUT_OF_WORDS: "its words ran out before its symbols",
    NOT_AT_END: "it does not end where its encoder started (corrupt words)",
    BAD_STATE: "its initial state is impossible",
    BAD_ESCAPE: "it holds an escaped value beyond compressai's int32 symbols",
    BAD_VALUE: "the latent has NaN, infinite or huge values that compressai's int32 symbols cannot hold",
}


def reciprocals(cdf: np.ndarray) -> np.ndarray:
    """1 / frequency of each entry of a CDF table (float64; 0 where the table has ended)."""
    freq = np.diff(cdf.astype(np.int64), axis=1)
    return np.divide(1.0, freq, out=np.zeros(freq.shape), where=freq > 0)


def search_buckets(cdf: np.ndarray, cdf_length: np.ndarray, precision: int) -> np.ndarray:
    """Where the decoder's binary search starts, per channel and slot bucket (the slot's top
    BUCKET_BITS bits): (channels, buckets, 2) int32, the entries lo and hi with cdf[lo] <= every slot
    of the bucket < cdf[hi]. The search then keeps its invariant and finds the same entry in fewer
    steps: none for a bucket inside one entry (a latent's median mostly)."""
    bits = min(BUCKET_BITS, precision)
    size = 1 << (precision - bits)
    first = np.arange(1 << bits, dtype=np.int64) * size
    buckets = np.empty((len(cdf), 1 << bits, 2), np.int32)
    for channel, (row, length) in enumerate(zip(cdf, cdf_length, strict=True)):
        table = row[:length].astype(np.int64)
        # The largest s with table[s] <= the bucket's first slot, and past the one of its last slot.
        buckets[channel, :, 0] = np.searchsorted(table, first, side="right") - 1
        buckets[channel, :, 1] = np.searchsorted(table, first + size - 1, side="right")
    return buckets


def max_lane_words(lane_size: int) -> int:
    """The most words a lane of `lane_size` symbols can take, all of them escaped."""
    return MAX_STEPS_PER_SYMBOL * lane_size + FLUSH_WORDS


def decode_lane(
    words: np.ndarray,
    begin: int,
    end: int,
    first: int,
    count: int,
    per_channel: int,
    plane: int,
    channels: int,
    cdf: np.ndarray,
    width: int,
    cdf_length: np.ndarray,
    offset: np.ndarray,
    precision: int,
    medians: np.ndarray,
    buckets: np.ndarray,
    out: np.ndarray,
    out_base: int,
    as_latent: bool,
) -> int:
    """Decodes symbols first .. first + count - 1 (channel-row order: channel i // per_channel) of one
    frame from words[begin:end] into out[out_base + NCHW index of each symbol]: the symbol, or, when
    `as_latent`, the float32 symbol plus its channel's median. `cdf` is the tables' quantized_cdf
    flattened (rows of `width`), `plane` is H * W, `buckets` is search_buckets of the tables,
    flattened. Reads and writes nothing outside words[begin:end] and these `count` places of `out`.
    Returns a status code (OK)."""
    if end - begin < 2:
        return OUT_OF_WORDS
    state = (np.int64(words[begin]) << WORD_BITS) | np.int64(words[begin + 1])
    if state < STATE_LOW:
        return BAD_STATE
    pos = begin + 2
    mask = (np.int64(1) << precision) - 1
    channel = first // per_channel
    within = first - channel * per_channel
    n = within // plane
    k = within - n * plane
    batch = per_channel // plane
    dst = out_base + (n * channels + channel) * plane + k
    # The channel's table, loaded again only where the channel changes.
    row = channel * width
    length = cdf_length[channel]
    shift = np.int64(offset[channel])
    median = medians[channel]
    bucket_shift = precision - min(BUCKET_BITS, precision)
    bucket_stride = 2 << (precision - bucket_shift)  # a channel's (lo, hi) pairs
    bucket_row = channel * bucket_stride
    for _ in range(count):
        slot = state & mask
        at = bucket_row + 2 * (slot >> bucket_shift)
        lo = np.int64(buckets[at])
        hi = np.int64(buckets[at + 1])
        while hi - lo > 1:  # the largest s with cdf[s] <= slot; cdf[0] = 0, cdf[length - 1] = 2**precision
            mid = (lo + hi) >> 1
            if cdf[row + mid] <= slot:
                lo = mid
            else:
                hi = mid
        start = np.int64(cdf[row + lo])
        freq = np.int64(cdf[row + lo + 1]) - start
        state = freq * (state >> precision) + slot - start
        if state < STATE_LOW:
            if pos >= end:
                return OUT_OF_WORDS
            state = (state << WORD_BITS) | np.int64(words[pos])
            pos += 1
        value = np.int64(lo)
        escape = length - 2
        if lo == escape:
            # Bypass groups of 4 bits: the count (groups of 15 while they are 15), then the value's.
            groups = np.int64(0)
            read = np.int64(0)
            counting = True
            raw = np.int64(0)
            while counting or read < groups:
                group = state & BYPASS_MAX
                state >>= BYPASS_BITS
                if state < STATE_LOW:
                    if pos >= end:
                        return OUT_OF_WORDS
                    state = (state << WORD_BITS) | np.int64(words[pos])
                    pos += 1
                if counting:
                    groups += group
                    if groups > MAX_BYPASS_GROUPS:
                        return BAD_ESCAPE
                    counting = group == BYPASS_MAX
                else:
                    raw |= group << (BYPASS_BITS * read)
                    read += 1
            value = -(raw >> 1) - 1 if raw & 1 else (raw >> 1) + escape
        symbol = value + shift
        if symbol >= INT32_LIMIT or symbol < -INT32_LIMIT:
            return BAD_ESCAPE
        if as_latent:
            out[dst] = np.float32(symbol) + median
        else:
            out[dst] = symbol
        k += 1
        dst += 1
        if k == plane:
            k = 0
            n += 1
            if n == batch:
                n = 0
                channel += 1
                if channel < channels:
                    row = channel * width
                    length = cdf_length[channel]
                    shift = np.int64(offset[channel])
                    median = medians[channel]
                    bucket_row = channel * bucket_stride
            dst = out_base + (n * channels + channel) * plane
    if state != STATE_LOW or pos != end:
        return NOT_AT_END
    return OK


_decode_lane_cpu = numba.njit(cache=True, nogil=True)(decode_lane)


@numba.njit(cache=True, nogil=True, parallel=True)
def decode_lanes(
    words: np.ndarray,
    bounds: np.ndarray,
    lane_size: int,
    total: int,
    per_channel: int,
    plane: int,
    channels: int,
    cdf: np.ndarray,
    cdf_length: np.ndarray,
    offset: np.ndarray,
    precision: int,
    medians: np.ndarray,
    buckets: np.ndarray,
    out: np.ndarray,
    as_latent: bool,
) -> np.ndarray:
    """The CPU reference decoder of one frame: lane i from words[bounds[i]:bounds[i + 1]], symbols
    written to `out` (NCHW, flat); each lane's status code."""
    lanes = len(bounds) - 1
    status = np.zeros(lanes, np.int32)
    flat = cdf.reshape(-1)
    for lane in numba.prange(lanes):
        first = lane * lane_size
        count = min(lane_size, total - first)
        status[lane] = _decode_lane_cpu(
            words, bounds[lane], bounds[lane + 1], first, count, per_channel, plane, channels,
            flat, cdf.shape[1], cdf_length, offset, precision, medians, buckets, out, 0, as_latent,
        )  # fmt: skip
    return status


@numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def encode_lanes(
    rows: np.ndarray,
    lane_size: int,
    per_channel: int,
    cdf: np.ndarray,
    cdf_length: np.ndarray,
    offset: np.ndarray,
    medians: np.ndarray,
    precision: int,
    reciprocals: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lanes of a latent's float values in channel-row order (`rows`, flat), fused: round(x - median)
    half to even, table index or escape, rANS, last symbol first. `reciprocals` are 1 / frequency of
    each table entry (rans.reciprocals), so that no symbol needs an integer division. Returns each
    lane's words at the end of its row of a scratch array, how many, and each lane's status
    (BAD_VALUE for a value with no int32 symbol)."""
    total = len(rows)
    lanes = (total + lane_size - 1) // lane_size
    capacity = MAX_STEPS_PER_SYMBOL * lane_size + FLUSH_WORDS
    scratch = np.empty((lanes, capacity), np.uint16)
    counts = np.zeros(lanes, np.int64)
    status = np.zeros(lanes, np.int32)
    top = np.int64(1) << (32 - precision)  # a symbol of frequency f renormalizes from state f * top
    bypass_top = np.int64(1) << (32 - BYPASS_BITS)
    for lane in numba.prange(lanes):
        buf = scratch[lane]
        pos = capacity
        state = np.int64(STATE_LOW)
        first = lane * lane_size
        last = min(first + lane_size, total)
        channel = (last - 1) // per_channel
        channel_start = channel * per_channel
        for i in range(last - 1, first - 1, -1):
            if i < channel_start:
                channel -= 1
                channel_start -= per_channel
            rounded = np.rint(rows[i] - medians[channel])
            if not (rounded > -INT32_LIMIT and rounded < INT32_LIMIT):  # NaN too
                status[lane] = BAD_VALUE
                break
            value = np.int64(rounded) - offset[channel]
            escape = np.int64(cdf_length[channel] - 2)
            index = value
            if value < 0 or value >= escape:
                index = escape
                raw = -2 * value - 1 if value < 0 else 2 * (value - escape)
                groups = 0
                while (raw >> (BYPASS_BITS * groups)) != 0:
                    groups += 1
                for j in range(groups - 1, -1, -1):  # the groups, last first
                    if state >= bypass_top:
                        pos -= 1
                        buf[pos] = state & WORD_MASK
                        state >>= WORD_BITS
                    state = (state << BYPASS_BITS) | ((raw >> (BYPASS_BITS * j)) & BYPASS_MAX)
                # The count: groups // 15 groups of 15, then the rest; written rest first.
                for j in range(groups // BYPASS_MAX + 1):
                    group = groups % BYPASS_MAX if j == 0 else BYPASS_MAX
                    if state >= bypass_top:
                        pos -= 1
                        buf[pos] = state & WORD_MASK
                        state >>= WORD_BITS
                    state = (state << BYPASS_BITS) | group
            start = np.int64(cdf[channel, index])
            freq = np.int64(cdf[channel, index + 1]) - start
            if state >= freq * top:
                pos -= 1
                buf[pos] = state & WORD_MASK
                state >>= WORD_BITS
            # state // freq by a float product, off by one at most (state < 2**32, freq < 2**16).
            quotient = np.int64(state * reciprocals[channel, index])
            remainder = state - quotient * freq
            if remainder < 0:
                quotient -= 1
                remainder += freq
            elif remainder >= freq:
                quotient += 1
                remainder -= freq
            state = (quotient << precision) + remainder + start
        pos -= 2
        buf[pos] = state >> WORD_BITS
        buf[pos + 1] = state & WORD_MASK
        counts[lane] = capacity - pos
    return scratch, counts, status


@numba.njit(cache=True, nogil=True)
def gather_lanes(scratch: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each lane's words (at the end of its row of `scratch`, counts[lane] of them), end to end."""
    lanes, capacity = scratch.shape
    bounds = np.zeros(lanes + 1, np.int64)
    for lane in range(lanes):
        bounds[lane + 1] = bounds[lane] + counts[lane]
    out = np.empty(bounds[lanes], np.uint16)
    for lane in range(lanes):
        out[bounds[lane] : bounds[lane + 1]] = scratch[lane, capacity - counts[lane] :]
    return out
