"""Unsigned LEB128 varints, for the few numbers of a payload that are usually small: version 1's
escaped values, version 2's lane table."""

import numba
import numpy as np

from sc2_split.codecs.payload import PayloadError

# Escaped values are uint32-sized (int32 symbols minus int32 offsets, zigzagged): 5 bytes at most.
MAX_VARINT_BYTES = 5
TOO_MANY, TOO_LONG = -1, -2  # _decode's answers beside a count


def encode_varints(values: np.ndarray) -> bytes:
    """Unsigned LEB128: 7 bits a byte, low bits first, the high bit set on all but the last byte."""
    values = values.astype(np.uint64)[:, None]
    shifts = 7 * np.arange(MAX_VARINT_BYTES, dtype=np.uint64)
    lengths = 1 + ((values >> shifts[1:]) > 0).sum(axis=1, keepdims=True)
    positions = np.arange(MAX_VARINT_BYTES)
    continues = np.where(positions + 1 < lengths, np.uint64(0x80), np.uint64(0))
    groups = (((values >> shifts) & np.uint64(0x7F)) | continues).astype(np.uint8)
    return groups[positions < lengths].tobytes()


def decode_varints(chunk: bytes, count: int, what: str) -> np.ndarray:
    """Exactly `count` LEB128 values filling `chunk`; anything else means a corrupt payload."""
    data = np.frombuffer(chunk, dtype=np.uint8)
    values = np.empty(count, np.int64)
    found = _decode(data, values)
    if found == TOO_LONG:
        raise PayloadError("corrupt", f"{what} has a value longer than {MAX_VARINT_BYTES} bytes or cut short")
    if found != count:
        held = "more" if found == TOO_MANY else str(found)
        raise PayloadError(
            "corrupt", f"{what} of {len(data)} bytes holds {held} whole values, expected exactly {count}"
        )
    return values


@numba.njit(cache=True, nogil=True)
def _decode(data: np.ndarray, values: np.ndarray) -> int:
    """How many values fill `data` (into `values` while they fit); TOO_MANY where more than fit,
    TOO_LONG for a value longer than MAX_VARINT_BYTES or one cut at the end."""
    count, value, length = 0, np.int64(0), 0
    for byte in data:
        if length == MAX_VARINT_BYTES:
            return TOO_LONG
        value |= np.int64(byte & 0x7F) << (7 * length)
        length += 1
        if byte < 0x80:
            if count == len(values):
                return TOO_MANY
            values[count] = value
            count += 1
            value, length = np.int64(0), 0
    return count if length == 0 else TOO_LONG
