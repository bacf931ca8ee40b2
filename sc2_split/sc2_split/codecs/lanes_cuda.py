"""The GPU decoder of entropy version 2: every lane of a batch of frames in one CUDA launch, one
thread a lane, the float latents written straight into the caller's CUDA memory.

The lane decoder is rans.decode_lane compiled as a device function, the very source of the CPU
reference decoder, so both give the same latents bit for bit. Imported only where CUDA is (the tail
on a CUDA device): it needs numba-cuda and, for `decode_to_tensor`, torch.
"""

from collections.abc import Sequence

import numpy as np
from numba import cuda

from sc2_split.codecs import lanes, rans
from sc2_split.codecs.entropy import EntropyTables
from sc2_split.codecs.payload import PayloadError

THREADS_PER_BLOCK = 32  # few lanes per frame at batch 1: spread them over many multiprocessors

_decode_lane = cuda.jit(device=True)(rans.decode_lane)


@cuda.jit
def _decode_kernel(words, lanes_info, per_channel, plane, channels, cdf, cdf_length, offset, precision,
                   medians, out, frame_size, status):  # fmt: skip
    """Lane g of the batch: words[begin:end] of frame `frame`, symbols first .. first + count - 1."""
    g = cuda.grid(1)
    if g >= lanes_info.shape[1]:
        return
    frame = lanes_info[0, g]
    code = _decode_lane(
        words, lanes_info[1, g], lanes_info[2, g], lanes_info[3, g], lanes_info[4, g], per_channel, plane,
        channels, cdf, cdf_length, offset, precision, medians, out, frame * frame_size, True,
    )  # fmt: skip
    if code != rans.OK:
        cuda.atomic.max(status, frame, code)


class GpuLanesDecoder:
    """Decodes checked version 2 payloads (LaneLayout, from EntropyCodec.lane_layout) of one latent
    shape into float32 latents on the current CUDA device; the tables are copied there once."""

    def __init__(self, tables: EntropyTables) -> None:
        self.tables = tables
        self._cdf = cuda.to_device(np.ascontiguousarray(tables.quantized_cdf))
        self._cdf_length = cuda.to_device(np.ascontiguousarray(tables.cdf_length))
        self._offset = cuda.to_device(np.ascontiguousarray(tables.offset))
        self._medians = cuda.to_device(np.ascontiguousarray(tables.medians))

    def decode_into(
        self, layouts: Sequence[lanes.LaneLayout], shape: tuple[int, ...], out: object, stream: object = 0
    ) -> list[PayloadError | None]:
        """Writes frame i's latent of `shape` (N, C, ...) into out[i * prod(shape):] (a flat float32 CUDA
        array, numba's or any __cuda_array_interface__ one) on `stream`, and returns each frame's error
        (None: decoded). A corrupt frame's part of `out` holds garbage; the others are untouched by it."""
        frame_size = int(np.prod(shape))
        plane = int(np.prod(shape[2:]))
        info, words = _lane_table(layouts)
        status = np.zeros(len(layouts), np.int32)
        if info.shape[1]:
            out_array = (
                out if hasattr(out, "copy_to_host") else cuda.as_cuda_array(out)
            )  # numba's, or torch's
            if out_array.size < len(layouts) * frame_size:
                raise ValueError(f"out holds {out_array.size} values, {len(layouts)} frames need more")
            status_d = cuda.to_device(status, stream=stream)
            blocks = -(-info.shape[1] // THREADS_PER_BLOCK)
            _decode_kernel[blocks, THREADS_PER_BLOCK, stream](
                cuda.to_device(words, stream=stream), cuda.to_device(info, stream=stream),
                shape[0] * plane, plane, self.tables.channels, self._cdf, self._cdf_length, self._offset,
                self.tables.precision, self._medians, out_array, frame_size, status_d,
            )  # fmt: skip
            status = status_d.copy_to_host(stream=stream)
            if stream:
                stream.synchronize()
            else:
                cuda.synchronize()
        return [None if code == rans.OK else _frame_error(code) for code in status]

    def decode_to_tensor(
        self, layouts: Sequence[lanes.LaneLayout], shape: tuple[int, ...], device: object
    ) -> tuple[object, list[PayloadError | None]]:
        """A torch float32 tensor (frames * N, C, ...) on `device` with every frame's latent, decoded on
        torch's current stream, and each frame's error (None: decoded)."""
        import torch

        batch = torch.empty((len(layouts) * shape[0], *shape[1:]), dtype=torch.float32, device=device)
        stream = cuda.external_stream(torch.cuda.current_stream(batch.device).cuda_stream)
        return batch, self.decode_into(layouts, shape, batch.view(-1), stream)


def _lane_table(layouts: Sequence[lanes.LaneLayout]) -> tuple[np.ndarray, np.ndarray]:
    """Every lane of the batch as columns (frame, begin, end, first symbol, symbols), int64, and the
    frames' words end to end (begin and end index them)."""
    columns, base = [], 0
    for frame, layout in enumerate(layouts):
        count = len(layout.bounds) - 1
        first = np.arange(count, dtype=np.int64) * layout.lane_size
        columns.append(
            np.stack([
                np.full(count, frame, np.int64), layout.bounds[:-1] + base, layout.bounds[1:] + base,
                first, np.minimum(layout.lane_size, layout.total - first),
            ])
        )  # fmt: skip
        base += len(layout.words)
    info = np.ascontiguousarray(np.concatenate(columns, axis=1)) if columns else np.zeros((5, 0), np.int64)
    words = np.concatenate([layout.words for layout in layouts]) if layouts else np.zeros(0, np.uint16)
    return info, words


def _frame_error(code: int) -> PayloadError:
    text = rans.STATUS_TEXT.get(int(code), f"status {int(code)}")
    return PayloadError("corrupt", f"an entropy lane of this frame is corrupt: {text}")
