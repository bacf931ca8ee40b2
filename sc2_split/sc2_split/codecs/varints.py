"""Unsigned LEB128 varints, for the few numbers of a payload that are usually small: version 1's
escaped values, version 2's lane table."""

import numpy as np

from sc2_split.codecs.payload import PayloadError

# Escaped values are uint32-sized (int32 symbols minus int32 offsets, zigzagged): 5 bytes at most.
MAX_VARINT_BYTES = 5


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
    ends = np.flatnonzero(data < 0x80)
    if len(ends) != count or (ends[-1] + 1 if count else 0) != len(data):
        raise PayloadError(
            "corrupt",
            f"{what} of {len(data)} bytes holds {len(ends)} whole values, expected exactly {count} "
            "filling it",
        )
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > MAX_VARINT_BYTES:
        raise PayloadError("corrupt", f"{what} has a value longer than {MAX_VARINT_BYTES} bytes")
    shifts = (7 * (np.arange(len(data)) - np.repeat(starts, lengths))).astype(np.uint64)
    return np.add.reduceat((data & 0x7F).astype(np.uint64) << shifts, starts).astype(np.int64)
