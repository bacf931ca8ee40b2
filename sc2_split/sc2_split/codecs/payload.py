"""The coded latent that every bottleneck codec produces, and the checks every decoder runs first.

A payload arrives from the network, so nothing in it is trusted: decoders take the latent shape from
the model and check every size the payload declares against the bytes actually there.
"""

from dataclasses import dataclass
from typing import Literal, Protocol, get_args

import numpy as np

from sc2_split.untrusted import shown

Reason = Literal[
    "unknown_codec", "version", "dtype", "shape", "truncated", "oversized", "corrupt", "model", "header"
]
REASONS: tuple[str, ...] = get_args(Reason)

DTYPES = ("float32", "float16")
HEADER_FIXED_BYTES = 30
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

    @property
    def nbytes(self) -> int:
        """Bytes of this payload with a self-describing header, the per-frame figure the benchmarks
        report (apart from any transport's framing): the data, 4 per dimension and per chunk size,
        the codec and dtype names, and 30 of fixed fields (tag, lengths, versions, scale, zero point)."""
        names = len(self.codec.encode("ascii")) + len(self.dtype.encode("ascii"))
        return len(self.data) + 4 * (len(self.shape) + len(self.chunk_sizes)) + names + HEADER_FIXED_BYTES


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
        raise PayloadError("unknown_codec", f"payload was coded with {shown(enc.codec)}, expected {codec!r}")
    if enc.version != version:
        raise PayloadError("version", f"payload has {codec} version {enc.version}, expected {version}")
    if enc.dtype not in DTYPES:
        raise PayloadError(
            "dtype", f"payload dtype is {shown(enc.dtype)}, expected one of {', '.join(DTYPES)}"
        )
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
