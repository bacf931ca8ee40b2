"""The SC2 way: entropy coding with the factorized prior of compressai's EntropyBottleneck.

Symbols are those of compressai (`round(x - median)`, decoded as `symbol + median`) and each
channel's probabilities are its `_quantized_cdf`, whose last bin is compressai's escape symbol for
values outside the table. Two bitstreams, both decoded: version 1 codes with `constriction`'s ANS
(one stream per channel, then one chunk with the escaped values); version 2, the default, cuts the
symbols into independent rANS lanes for parallel decoding (codecs/lanes.py). Neither needs torch.
"""

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Protocol

import constriction
import numpy as np

from sc2_split.codecs import lanes, rans
from sc2_split.codecs.payload import EncodedTensor, PayloadError, check_length, check_payload, latent_dtype
from sc2_split.codecs.varints import decode_varints, encode_varints

TABLE_FIELDS = ("quantized_cdf", "cdf_length", "offset", "medians", "precision")
# numba's default threading layer (workqueue) must not run two parallel regions at once: the lanes'
# coder and decoder, each on all cores, take turns when several threads call them.
_LANES_LOCK = threading.Lock()
INT32_LIMIT = 2**31


class ChannelCoder(Protocol):
    """What codes each channel: InProcessChannels, or a ChannelPool's workers."""

    def encode(self, rows: np.ndarray) -> tuple[list[bytes], np.ndarray]:
        """Each channel's stream of the latent's (channels, elements per channel) rows, and the escaped
        values of all channels in channel order; raises ValueError where a value has no int32 symbol."""
        ...

    def decode(self, data: bytes, bounds: Sequence[int], per_channel: int) -> np.ndarray:
        """The (channels, per_channel) int32 indexes; channel c's stream is data[bounds[c]:bounds[c + 1]]."""
        ...


@dataclass(frozen=True, eq=False)
class EntropyTables:
    """An updated EntropyBottleneck's coding tables as plain arrays, for a head without torch.

    Row c of `quantized_cdf` is channel c's CDF over `cdf_length[c]` entries (compressai pads the
    rest with zeros); symbols map to rows by `symbol - offset[c]`.
    """

    quantized_cdf: np.ndarray
    cdf_length: np.ndarray
    offset: np.ndarray
    medians: np.ndarray
    precision: int = 16

    def __post_init__(self) -> None:
        for name, dtype in (
            ("quantized_cdf", np.int32),
            ("cdf_length", np.int32),
            ("offset", np.int32),
            ("medians", np.float32),
        ):
            object.__setattr__(self, name, _frozen_array(getattr(self, name), name, dtype))
        _validate(self)

    @property
    def channels(self) -> int:
        return self.quantized_cdf.shape[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able lists, for the metadata file next to an exported model."""
        return {
            "quantized_cdf": self.quantized_cdf.tolist(),
            "cdf_length": self.cdf_length.tolist(),
            "offset": self.offset.tolist(),
            "medians": self.medians.tolist(),
            "precision": self.precision,
        }

    @classmethod
    def from_dict(cls, tables: Mapping[str, Any]) -> "EntropyTables":
        """Load `to_dict` output; raises ValueError when the tables are incomplete or inconsistent."""
        missing = [name for name in TABLE_FIELDS if name not in tables]
        if missing:
            raise ValueError(f"entropy tables lack {', '.join(missing)}; expected {', '.join(TABLE_FIELDS)}")
        return cls(**{name: tables[name] for name in TABLE_FIELDS})


def from_symbols(symbols: np.ndarray, tables: EntropyTables) -> np.ndarray:
    """compressai's `dequantize(symbols, medians)`: symbol cast to float32, plus the median."""
    medians = tables.medians.reshape(1, -1, *([1] * (symbols.ndim - 2)))
    return symbols.astype(np.float32) + medians


VERSIONS = {1: "per-channel streams", 2: "lanes"}


class EntropyCodec:
    """Encodes `version` 2 (rANS lanes, coded by numba on all cores) or 1 (one ANS stream per channel,
    then the escaped values; its channels coded by `channels`, a ChannelPool, where given); decodes
    either version. The default version is 2, or 1 where `channels` are given."""

    name = "entropy"

    def __init__(
        self, tables: EntropyTables, channels: ChannelCoder | None = None, version: int | None = None
    ) -> None:
        if version is None:
            version = lanes.VERSION if channels is None else 1
        if version not in VERSIONS:
            raise ValueError(f"entropy codec version must be one of {sorted(VERSIONS)}, not {version!r}")
        if version == lanes.VERSION and tables.precision > lanes.MAX_PRECISION:
            raise ValueError(f"entropy version 2 needs tables of {lanes.MAX_PRECISION} bits or fewer")
        self.tables = tables
        self.version = version
        self.lane_size = lanes.lane_size_for(
            lanes.expected_bits(tables.quantized_cdf, tables.cdf_length, tables.precision)
        )
        self._channels = channels or InProcessChannels(tables)
        self._reciprocals = rans.reciprocals(tables.quantized_cdf)
        self._buckets = rans.search_buckets(
            tables.quantized_cdf, tables.cdf_length, tables.precision
        ).reshape(-1)
        self._escape = _escape_indexes(tables).astype(np.int64)[:, None]
        self._offset = tables.offset.astype(np.int64)[:, None]
        self._offset32, self._escape32 = self._offset.astype(np.int32), self._escape.astype(np.uint32)

    def encode(self, latent: np.ndarray) -> EncodedTensor:
        dtype = latent_dtype(latent)
        _check_latent_shape(latent, self.tables)
        if self.version == lanes.VERSION:
            data, chunk_sizes = self._encode_lanes(latent)
        else:
            chunks, raw = self._channels.encode(_channel_rows(latent))
            chunks.append(encode_varints(raw))
            data, chunk_sizes = b"".join(chunks), tuple(len(chunk) for chunk in chunks)
        return EncodedTensor(
            codec=self.name,
            version=self.version,
            shape=tuple(int(n) for n in latent.shape),
            dtype=dtype,
            data=data,
            chunk_sizes=chunk_sizes,
        )

    def decode(self, enc: EncodedTensor, expected_shape: tuple[int, ...]) -> np.ndarray:
        layout = self.lane_layout(enc, expected_shape)
        if layout is not None:
            return self._decode_lanes(layout, expected_shape, np.float32)
        return from_symbols(self._decode_channels(enc, expected_shape), self.tables)

    def decode_symbols(self, enc: EncodedTensor, expected_shape: tuple[int, ...]) -> np.ndarray:
        """The integer symbols (compressai's `quantize(x, "symbols", medians)`) of a payload."""
        layout = self.lane_layout(enc, expected_shape)
        if layout is not None:
            return self._decode_lanes(layout, expected_shape, np.int32)
        return self._decode_channels(enc, expected_shape)

    def lane_layout(self, enc: EncodedTensor, expected_shape: tuple[int, ...]) -> lanes.LaneLayout | None:
        """The checked lanes of a version 2 payload (for the GPU decoder, lanes_cuda.py), None for a
        version 1 payload; PayloadError for anything else or a malformed header."""
        if self._checked_version(enc, expected_shape) != lanes.VERSION:
            return None
        if self.tables.precision > lanes.MAX_PRECISION:
            raise PayloadError("version", f"entropy version 2 needs tables of {lanes.MAX_PRECISION} bits")
        return lanes.check_lanes(enc, math.prod(expected_shape))

    def _checked_version(self, enc: EncodedTensor, expected_shape: tuple[int, ...]) -> int:
        """The payload's version, once it is one this codec decodes and the rest of its header fits."""
        if enc.codec == self.name and enc.version not in VERSIONS:
            known = " and ".join(f"{v} ({what})" for v, what in VERSIONS.items())
            raise PayloadError(
                "version", f"payload has entropy version {enc.version}; this codec decodes versions {known}"
            )
        check_payload(enc, self.name, enc.version, expected_shape)
        channels = self.tables.channels
        if len(expected_shape) < 2 or expected_shape[1] != channels:
            raise ValueError(f"expected shape {expected_shape} is not (N, {channels}, ...) as the tables say")
        return enc.version

    def _encode_lanes(self, latent: np.ndarray) -> tuple[bytes, tuple[int, int, int, int]]:
        t = self.tables
        rows = np.ascontiguousarray(_channel_rows(latent), dtype=np.float32).reshape(-1)
        with _LANES_LOCK:
            scratch, counts, status = rans.encode_lanes(
                rows, self.lane_size, rows.size // t.channels, t.quantized_cdf, t.cdf_length, t.offset,
                t.medians, t.precision, self._reciprocals,
            )  # fmt: skip
        if status.any():
            raise ValueError(rans.STATUS_TEXT[rans.BAD_VALUE])
        return lanes.pack(scratch, counts, self.lane_size)

    def _decode_lanes(self, layout: lanes.LaneLayout, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """The symbols (int32) or latent (float32) of version 2 lanes, by the CPU reference decoder."""
        t = self.tables
        out = np.empty(shape, dtype)
        plane = math.prod(shape[2:])
        with _LANES_LOCK:
            status = rans.decode_lanes(
                layout.words, layout.bounds, layout.lane_size, layout.total, shape[0] * plane, plane,
                t.channels, t.quantized_cdf, t.cdf_length, t.offset, t.precision, t.medians, self._buckets,
                out.reshape(-1), dtype is np.float32,
            )  # fmt: skip
        if status.any():
            raise lanes.lane_error(status)
        return out

    def _decode_channels(self, enc: EncodedTensor, expected_shape: tuple[int, ...]) -> np.ndarray:
        """The symbols of a version 1 payload."""
        channels = self.tables.channels
        if len(enc.chunk_sizes) != channels + 1:
            raise PayloadError(
                "corrupt",
                f"entropy payload has {len(enc.chunk_sizes)} chunks, expected {channels + 1} "
                "(one per channel, then the escaped values)",
            )
        if any(size < 0 for size in enc.chunk_sizes):
            raise PayloadError("corrupt", f"entropy chunk sizes {enc.chunk_sizes} include a negative size")
        check_length(len(enc.data), sum(enc.chunk_sizes), "entropy data (the sum of its chunk sizes)")
        bounds = list(accumulate(enc.chunk_sizes, initial=0))
        per_channel = math.prod(expected_shape) // channels
        indexes = self._channels.decode(enc.data, bounds, per_channel)
        escaped = indexes == self._escape32.astype(indexes.dtype)
        raw = decode_varints(enc.data[bounds[channels] :], int(escaped.sum()), "escape chunk").astype(
            np.int64
        )
        symbols = (indexes + self._offset32).astype(np.int32)  # compressai's symbols are int32
        if raw.size:  # escaped values, few: rebuilt in int64, then checked to fit
            escape = np.broadcast_to(self._escape, indexes.shape)[escaped]
            offset = np.broadcast_to(self._offset, indexes.shape)[escaped]
            values = np.where(raw % 2 == 0, escape + raw // 2, -(raw // 2) - 1) + offset
            if np.abs(values).max() >= INT32_LIMIT:
                raise PayloadError("corrupt", "an escaped value lies beyond compressai's int32 symbols")
            symbols[escaped] = values
        n, _, *rest = expected_shape
        return np.ascontiguousarray(np.moveaxis(symbols.reshape(channels, n, *rest), 0, 1))


class InProcessChannels:
    """Codes the channels one after another in the caller's process."""

    def __init__(self, tables: EntropyTables) -> None:
        self.tables = tables
        self._models = channel_models(tables)

    def encode(self, rows: np.ndarray) -> tuple[list[bytes], np.ndarray]:
        return encode_channel_rows(self._models, self.tables, rows, range(len(self._models)))

    def decode(self, data: bytes, bounds: Sequence[int], per_channel: int) -> np.ndarray:
        indexes = np.empty((len(self._models), per_channel), np.int32)
        ans_decode_channels(self._models, data, bounds, range(len(self._models)), indexes)
        return indexes


def channel_models(tables: EntropyTables) -> list[Any]:
    """constriction's model of each channel's table, built once per codec or decoding process."""
    scale = float(2**tables.precision)
    return [
        constriction.stream.model.Categorical(np.diff(cdf[:length]) / scale, perfect=False)
        for cdf, length in zip(tables.quantized_cdf, tables.cdf_length, strict=True)
    ]


def encode_channel_rows(
    models: Sequence[Any], tables: EntropyTables, rows: np.ndarray, channels: range
) -> tuple[list[bytes], np.ndarray]:
    """The ANS stream of each of `channels`, the i-th from latent row i of `rows`, and their escaped
    values in channel order: the encoding work of both InProcessChannels and a ChannelPool's workers.
    Raises ValueError where a value has no int32 symbol. Channel by channel, so that the temporary
    arrays stay small (a frame's latent has ~10^5-10^6 elements)."""
    escapes = _escape_indexes(tables)
    chunks, raws = [], []
    for row, channel in zip(rows, channels, strict=True):
        # Table indexes in int32, the hot path; the escaped values, few, are mapped in int64
        # (symbol - offset can leave the int32 range).
        symbols = _rounded_symbols(row.astype(np.float32, copy=False), tables.medians[channel])
        offset, escape = tables.offset[channel], escapes[channel]
        indexes = symbols - offset
        # One unsigned comparison: a negative index is a huge unsigned one and is escaped too, and so
        # is an index that wrapped around in int32 (its magnitude is then close to 2**31).
        escaped = indexes.view(np.uint32) >= np.uint32(escape)
        if escaped.any():
            values = symbols[escaped].astype(np.int64) - np.int64(offset)
            indexes[escaped] = escape
            # compressai's mapping of an escaped value to a non-negative integer (odd below, even above).
            raws.append(np.where(values < 0, -2 * values - 1, 2 * (values - np.int64(escape))))
        chunks.append(_ans_encode(indexes, models[channel]))
    return chunks, np.concatenate(raws) if raws else np.zeros(0, np.int64)


def ans_decode_channels(
    models: Sequence[Any], data: bytes, bounds: Sequence[int], channels: range, out: np.ndarray
) -> None:
    """Decodes `channels`, the i-th of them from data[bounds[i]:bounds[i + 1]], into the rows of `out`
    (one row of table indexes each): the decoding loop of both InProcessChannels and a ChannelPool's
    workers."""
    for row, channel in enumerate(channels):
        chunk = data[bounds[row] : bounds[row + 1]]
        out[row] = _ans_decode(chunk, models[channel], out.shape[1], channel)


def _check_latent_shape(latent: np.ndarray, tables: EntropyTables) -> None:
    if latent.ndim < 2 or latent.shape[1] != tables.channels:
        raise ValueError(
            f"latent shape {latent.shape} is not (N, {tables.channels}, ...) as the tables expect"
        )


def _rounded_symbols(latent: np.ndarray, medians: np.ndarray) -> np.ndarray:
    """round(latent - medians) half to even, as int32 like compressai's symbols; float32 in."""
    rounded = np.subtract(latent, medians)
    np.rint(rounded, out=rounded)
    if rounded.size and not (rounded.min() > -INT32_LIMIT and rounded.max() < INT32_LIMIT):  # NaN too
        raise ValueError(
            "latent has NaN, infinite or huge values that compressai's int32 symbols cannot hold"
        )
    return rounded.astype(np.int32)


def _escape_indexes(tables: EntropyTables) -> np.ndarray:
    """compressai's escape symbol of each channel: the last table entry, `cdf_length - 2`."""
    return tables.cdf_length - 2


def _channel_rows(tensor: np.ndarray) -> np.ndarray:
    """(N, C, ...) to (C, N * ...): each channel's elements in order, batch first."""
    return np.moveaxis(tensor, 1, 0).reshape(tensor.shape[1], -1)


def _ans_encode(indexes: np.ndarray, model: Any) -> bytes:
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(indexes, model)
    return coder.get_compressed().astype("<u4").tobytes()


def _ans_decode(chunk: bytes, model: Any, count: int, channel: int) -> np.ndarray:
    # constriction's ANS decoder accepts any words not ending in a zero word and then decodes
    # `count` symbols of the alphabet whatever the bits; corruption shows only as leftover words.
    if len(chunk) % 4:
        raise PayloadError(
            "corrupt", f"entropy stream of channel {channel} is {len(chunk)} bytes, not whole words"
        )
    try:
        coder = constriction.stream.stack.AnsCoder(np.frombuffer(chunk, dtype="<u4").astype(np.uint32))
        indexes = coder.decode(model, count)
    except Exception as err:  # constriction reports bad streams as plain exceptions
        raise PayloadError(
            "corrupt", f"entropy stream of channel {channel} is not valid ANS data: {err}"
        ) from err
    if not coder.is_empty():
        raise PayloadError(
            "corrupt", f"entropy stream of channel {channel} has data left after {count} symbols"
        )
    return indexes


def _frozen_array(value: Any, name: str, dtype: type) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError as err:  # ragged nested lists
        raise ValueError(f"entropy table {name} is not a rectangular array: {err}") from None
    kinds = "iuf" if dtype is np.float32 else "iu"
    if array.dtype.kind not in kinds:
        raise ValueError(f"entropy table {name} holds {array.dtype} values, expected {np.dtype(dtype).name}")
    if array.dtype.kind in "iu" and array.size and (array.min() < -INT32_LIMIT or array.max() >= INT32_LIMIT):
        raise ValueError(f"entropy table {name} has values outside int32")
    array = array.astype(dtype)
    array.flags.writeable = False
    return array


def _validate(tables: EntropyTables) -> None:
    cdf, lengths = tables.quantized_cdf, tables.cdf_length
    if cdf.ndim != 2 or cdf.shape[0] == 0:
        raise ValueError(f"quantized_cdf must be a [channels, length] table, got shape {cdf.shape}")
    channels, width = cdf.shape
    for name in ("cdf_length", "offset", "medians"):
        shape = getattr(tables, name).shape
        if shape != (channels,):
            raise ValueError(f"{name} must have one entry per channel ({channels}), got shape {shape}")
    if not isinstance(tables.precision, int) or not 1 <= tables.precision <= 30:
        raise ValueError(f"precision must be an integer from 1 to 30 bits, got {tables.precision!r}")
    if not np.all(np.isfinite(tables.medians)):
        raise ValueError("medians must be finite")
    short = np.flatnonzero((lengths < 3) | (lengths > width))
    if short.size:
        c = short[0]
        raise ValueError(
            f"cdf_length of channel {c} is {lengths[c]}, expected 3 to {width} (the table width)"
        )
    rows = np.arange(channels)
    inside = np.arange(width - 1)[None, :] < (lengths - 1)[:, None]
    bad = np.flatnonzero((cdf[:, 0] != 0) | np.any((np.diff(cdf, axis=1) <= 0) & inside, axis=1))
    if bad.size:
        raise ValueError(f"CDF of channel {bad[0]} does not start at 0 and rise strictly over its cdf_length")
    total = 2**tables.precision
    bad = np.flatnonzero(cdf[rows, lengths - 1] != total)
    if bad.size:
        c = bad[0]
        raise ValueError(
            f"CDF of channel {c} ends at {cdf[c, lengths[c] - 1]}, expected 2**precision = {total}"
        )
