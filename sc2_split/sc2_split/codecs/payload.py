"""The coded latent that every bottleneck codec produces, and the checks every decoder runs first.

A payload arrives from the network, so nothing in it is trusted: decoders take the latent shape from
the model, and `EncodedTensor.from_bytes` never allocates what a header merely claims.
"""

import struct
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

import numpy as np

Reason = Literal["unknown_codec", "version", "dtype", "shape", "truncated", "oversized", "corrupt", "model"]
REASONS: tuple[str, ...] = get_args(Reason)

DTYPES = ("float32", "float16")
MAGIC = b"SC2T"
HEADER_VERSION = 1
MAX_NDIM = 8
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class PayloadError(ValueError):
    """A payload that cannot be decoded; `reason` is a short key for counting rejections."""

    def __init__(self, reason: Reason, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown payload error reason {reason!r}; expected one of {', '.join(REASONS)}")
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class EncodedTensor:
    """One coded latent; the fields are those of the ROS message sc2_split_msgs/Bottleneck."""

    codec: str
    version: int
    shape: tuple[int, ...]
    dtype: str
    data: bytes
    scale: float = 0.0
    zero_point: int = 0
    chunk_sizes: tuple[int, ...] = ()

    def to_bytes(self) -> bytes:
        """A self-describing little-endian byte string, for files and byte counting without ROS."""
        if len(self.shape) > MAX_NDIM:
            raise ValueError(f"a payload holds at most {MAX_NDIM} dimensions, got shape {self.shape}")
        head = [MAGIC, struct.pack("<B", HEADER_VERSION), _pack_text(self.codec)]
        head += [struct.pack("<H", self.version), _pack_text(self.dtype)]
        head.append(struct.pack(f"<B{len(self.shape)}I", len(self.shape), *self.shape))
        head.append(struct.pack("<di", self.scale, self.zero_point))
        head.append(struct.pack(f"<I{len(self.chunk_sizes)}I", len(self.chunk_sizes), *self.chunk_sizes))
        head.append(struct.pack("<I", len(self.data)))
        return b"".join([*head, self.data])

    @classmethod
    def from_bytes(cls, buf: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> "EncodedTensor":
        """Parse `to_bytes` output, checking every declared size against the bytes actually there."""
        if len(buf) > max_bytes:
            raise PayloadError(
                "oversized", f"payload is {len(buf)} bytes, more than the limit of {max_bytes}"
            )
        reader = _Reader(buf)
        magic = reader.take(len(MAGIC), "magic")
        if magic != MAGIC:
            raise PayloadError("corrupt", f"payload starts with {magic!r}, expected the magic {MAGIC!r}")
        (header_version,) = reader.unpack("<B", "header version")
        if header_version != HEADER_VERSION:
            raise PayloadError(
                "version", f"payload header version is {header_version}, expected {HEADER_VERSION}"
            )
        codec = reader.text("codec name")
        (version,) = reader.unpack("<H", "codec version")
        dtype = reader.text("dtype")
        (ndim,) = reader.unpack("<B", "number of dimensions")
        if ndim > MAX_NDIM:
            raise PayloadError("shape", f"payload declares {ndim} dimensions, expected at most {MAX_NDIM}")
        shape = reader.unpack(f"<{ndim}I", "shape")
        scale, zero_point = reader.unpack("<di", "scale and zero point")
        (chunk_count,) = reader.unpack("<I", "chunk count")
        chunk_sizes = reader.unpack(f"<{chunk_count}I", "chunk sizes")
        (data_length,) = reader.unpack("<I", "data length")
        check_length(reader.remaining, data_length, "payload data")
        return cls(
            codec=codec,
            version=version,
            shape=shape,
            dtype=dtype,
            data=reader.take(data_length, "data"),
            scale=scale,
            zero_point=zero_point,
            chunk_sizes=chunk_sizes,
        )


class Codec(Protocol):
    """A bottleneck codec: a latent tensor to an `EncodedTensor` and back."""

    name: str
    version: int

    def encode(self, latent: np.ndarray) -> EncodedTensor:
        """The payload of one float32 or float16 latent."""
        ...

    def decode(self, enc: EncodedTensor, expected_shape: tuple[int, ...]) -> np.ndarray:
        """The float32 latent of the model's `expected_shape`, or PayloadError if the payload is not one."""
        ...


def check_payload(enc: EncodedTensor, codec: str, version: int, expected_shape: tuple[int, ...]) -> None:
    """Refuse a payload of another codec or version, of an unknown dtype, or not of the model's shape."""
    if enc.codec != codec:
        raise PayloadError("unknown_codec", f"payload was coded with {enc.codec!r}, expected {codec!r}")
    if enc.version != version:
        raise PayloadError("version", f"payload has {codec} version {enc.version}, expected {version}")
    if enc.dtype not in DTYPES:
        raise PayloadError("dtype", f"payload dtype is {enc.dtype!r}, expected one of {', '.join(DTYPES)}")
    if tuple(enc.shape) != tuple(expected_shape):
        raise PayloadError(
            "shape", f"payload latent shape is {tuple(enc.shape)}, the model expects {tuple(expected_shape)}"
        )


def check_length(actual: int, expected: int, what: str) -> None:
    """Refuse `what` when it is shorter ("truncated") or longer ("oversized") than `expected` bytes."""
    if actual < expected:
        raise PayloadError("truncated", f"{what} is {actual} bytes, expected {expected}")
    if actual > expected:
        raise PayloadError("oversized", f"{what} is {actual} bytes, expected {expected}")


def latent_dtype(latent: np.ndarray) -> str:
    """The payload name of a latent's element type; heads emit float32 or float16 only."""
    if latent.dtype.name not in DTYPES:
        raise ValueError(f"latent dtype is {latent.dtype.name}, expected one of {', '.join(DTYPES)}")
    return latent.dtype.name


def _pack_text(text: str) -> bytes:
    raw = text.encode("ascii")
    return struct.pack("<B", len(raw)) + raw


class _Reader:
    """Reads fields from the front of a buffer; reading past its end is a "truncated" payload."""

    def __init__(self, buf: bytes) -> None:
        self._view = memoryview(buf)
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._view) - self._pos

    def take(self, size: int, what: str) -> bytes:
        if size > self.remaining:
            raise PayloadError(
                "truncated", f"payload ends inside its {what}: {size} bytes needed, {self.remaining} left"
            )
        out = bytes(self._view[self._pos : self._pos + size])
        self._pos += size
        return out

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))

    def text(self, what: str) -> str:
        (size,) = self.unpack("<B", what)
        raw = self.take(size, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise PayloadError("corrupt", f"payload {what} {raw!r} is not ASCII text") from None
