"""The GPU decoder of entropy version 2: every lane of a batch of frames in one CUDA launch, one
thread a lane, the float latents written straight into the caller's CUDA memory.

The lane decoder is rans.decode_lane compiled as a device function, the very source of the CPU
reference decoder, so both give the same latents bit for bit. Each block first copies the CDF
tables into shared memory (the binary search reads them several times a symbol). A batch crosses
to the GPU in one copy from a pinned staging buffer: the frames' status words (zero), the lane
table, the lanes' words. Imported only where CUDA is (the tail on a CUDA device): it needs
numba-cuda and, for `decode_to_tensor`, torch.
"""

from collections.abc import Callable, Sequence

import numpy as np
from numba import cuda, int32

from sc2_split.codecs import lanes, rans
from sc2_split.codecs.entropy import EntropyTables
from sc2_split.codecs.payload import PayloadError

THREADS_PER_BLOCK = 32  # few lanes per frame at batch 1: spread them over many multiprocessors
SHARED_TABLE_BYTES = 40 * 1024  # larger tables stay in global memory
LANE_COLUMNS = 5  # frame, first word, end word, first symbol, symbols

_decode_lane = cuda.jit(device=True)(rans.decode_lane)


@cuda.jit
def _decode_kernel(words, lanes_info, per_channel, plane, channels, cdf, width, cdf_length, offset,
                   precision, medians, buckets, out, frame_size, status, shared_table):  # fmt: skip
    """Lane g of the batch: words[begin:end] of frame `frame`, symbols first .. first + count - 1."""
    table = cdf
    if shared_table:
        table = cuda.shared.array(0, int32)
        for i in range(cuda.threadIdx.x, cdf.size, cuda.blockDim.x):
            table[i] = cdf[i]
        cuda.syncthreads()
    g = cuda.grid(1)
    if g < lanes_info.shape[1]:
        frame = lanes_info[0, g]
        code = _decode_lane(
            words, lanes_info[1, g], lanes_info[2, g], lanes_info[3, g], lanes_info[4, g], per_channel,
            plane, channels, table, width, cdf_length, offset, precision, medians, buckets, out,
            frame * frame_size, True,
        )  # fmt: skip
        if code != rans.OK:
            cuda.atomic.max(status, frame, code)


class GpuLanesDecoder:
    """Decodes checked version 2 payloads (LaneLayout, from EntropyCodec.lane_layout) of one latent
    shape into float32 latents on the current CUDA device; the tables are copied there once, the
    staging buffers grow to the largest batch seen. One caller at a time."""

    def __init__(self, tables: EntropyTables) -> None:
        self.tables = tables
        cdf = np.ascontiguousarray(tables.quantized_cdf)
        self._width = cdf.shape[1]
        self._cdf = cuda.to_device(cdf.reshape(-1))
        self._shared_bytes = cdf.nbytes if cdf.nbytes <= SHARED_TABLE_BYTES else 0
        self._cdf_length = cuda.to_device(np.ascontiguousarray(tables.cdf_length))
        self._offset = cuda.to_device(np.ascontiguousarray(tables.offset))
        self._medians = cuda.to_device(np.ascontiguousarray(tables.medians))
        buckets = rans.search_buckets(cdf, tables.cdf_length, tables.precision).reshape(-1)
        self._buckets = cuda.to_device(buckets)
        # Allocated at the first batch (CUDA refuses empty pinned allocations), grown as needed.
        self._pinned = self._device = self._status = None
        self._torch_stream = None
        self._compile()

    def _compile(self) -> None:
        """Compiles the kernel now, by decoding one empty lane (its initial state is L, its symbols
        none): a numba-cuda that cannot compile here fails where the decoder is made, where a caller
        can fall back to the CPU decoder, and the first frame does not wait for the compiler."""
        empty = lanes.LaneLayout(
            words=np.array([1, 0], np.uint16), bounds=np.array([0, 2]), lane_size=lanes.MIN_LANE_SIZE, total=0
        )
        channels = self.tables.channels
        errors = self.decode_into([empty], (1, channels, 1, 1), cuda.device_array(channels, np.float32))
        if errors[0] is not None:
            raise errors[0]

    def decode_into(
        self,
        layouts: Sequence[lanes.LaneLayout],
        shape: tuple[int, ...],
        out: object,
        stream: object = 0,
        wait: Callable[[], None] | None = None,
    ) -> list[PayloadError | None]:
        """Writes frame i's latent of `shape` (N, C, ...) into out[i * prod(shape):] (a flat float32 CUDA
        array, numba's or any __cuda_array_interface__ one) on `stream`, waits (`wait`, else by
        synchronizing the stream) and returns each frame's error (None: decoded). A corrupt frame's
        part of `out` holds garbage; the others are untouched by it."""
        frames = len(layouts)
        frame_size = int(np.prod(shape))
        plane = int(np.prod(shape[2:]))
        lane_total = sum(len(layout.bounds) - 1 for layout in layouts)
        word_total = sum(len(layout.words) for layout in layouts)
        if not lane_total:
            return [None] * frames
        out_array = out if hasattr(out, "copy_to_host") else cuda.as_cuda_array(out)  # numba's, or torch's
        if out_array.size < frames * frame_size:
            raise ValueError(f"out holds {out_array.size} values, {frames} frames need more")
        status_bytes = 8 * -(-frames // 2)  # int32 each, padded so that the lane table stays aligned
        info_bytes = 8 * LANE_COLUMNS * lane_total
        size = status_bytes + info_bytes + 2 * word_total
        staging = self._staging(size, frames)
        staging[:status_bytes] = 0
        info = (
            staging[status_bytes : status_bytes + info_bytes].view(np.int64).reshape(LANE_COLUMNS, lane_total)
        )
        words = staging[status_bytes + info_bytes : size].view(np.uint16)
        _fill_lane_table(layouts, info, words)
        device = self._device[:size]
        device.copy_to_device(staging[:size], stream=stream)
        status = device[:status_bytes].view(np.int32)
        blocks = -(-lane_total // THREADS_PER_BLOCK)
        _decode_kernel[blocks, THREADS_PER_BLOCK, stream, self._shared_bytes](
            device[status_bytes + info_bytes : size].view(np.uint16),
            device[status_bytes : status_bytes + info_bytes].view(np.int64).reshape(LANE_COLUMNS, lane_total),
            shape[0] * plane, plane, self.tables.channels, self._cdf, self._width, self._cdf_length,
            self._offset, self.tables.precision, self._medians, self._buckets, out_array, frame_size, status,
            self._shared_bytes > 0,
        )  # fmt: skip
        codes = self._status[:frames]
        status[:frames].copy_to_host(codes, stream=stream)
        if wait is not None:
            wait()
        elif stream:
            stream.synchronize()
        else:
            cuda.synchronize()
        return [None if code == rans.OK else _frame_error(code) for code in codes]

    def decode_to_tensor(
        self, layouts: Sequence[lanes.LaneLayout], shape: tuple[int, ...], device: object
    ) -> tuple[object, list[PayloadError | None]]:
        """A torch float32 tensor (frames * N, C, ...) on `device` with every frame's latent, and each
        frame's error (None: decoded). Decodes on a stream of its own, so that a network running on
        another thread's stream goes on meanwhile, and waits on a blocking event, so that the CPU
        sleeps while the GPU decodes; the tensor is ready on return. A consumer on another stream calls
        `record_stream` on it, so that its memory is not reused before that stream is done with it."""
        import torch

        if self._torch_stream is None:
            self._torch_stream = torch.cuda.Stream(device)  # non-blocking: not the default stream's
        side = self._torch_stream
        # Allocated in the decoding stream's order; a consumer on another stream must record_stream it.
        with torch.cuda.stream(side):
            batch = torch.empty((len(layouts) * shape[0], *shape[1:]), dtype=torch.float32, device=device)
        done = torch.cuda.Event(blocking=True)

        def wait() -> None:
            done.record(side)
            done.synchronize()

        stream = cuda.external_stream(side.cuda_stream)
        return batch, self.decode_into(layouts, shape, batch.view(-1), stream, wait)

    def _staging(self, size: int, frames: int) -> np.ndarray:
        """The pinned staging buffer of at least `size` bytes (and the device buffer it is copied to)."""
        if self._pinned is None or self._pinned.size < size:
            capacity = max(size, 2 * (0 if self._pinned is None else self._pinned.size))
            self._pinned = cuda.pinned_array(capacity, np.uint8)
            self._device = cuda.device_array(capacity, np.uint8)
        if self._status is None or self._status.size < frames:
            self._status = cuda.pinned_array(max(frames, 64), np.int32)
        return self._pinned


def _fill_lane_table(layouts: Sequence[lanes.LaneLayout], info: np.ndarray, words: np.ndarray) -> None:
    """Every lane of the batch as columns of `info` (frame, begin, end, first symbol, symbols), and the
    frames' words end to end in `words` (begin and end index them)."""
    lane, base = 0, 0
    for frame, layout in enumerate(layouts):
        count = len(layout.bounds) - 1
        columns = info[:, lane : lane + count]
        columns[0] = frame
        np.add(layout.bounds[:-1], base, out=columns[1])
        np.add(layout.bounds[1:], base, out=columns[2])
        np.multiply(np.arange(count), layout.lane_size, out=columns[3])
        np.minimum(layout.total - columns[3], layout.lane_size, out=columns[4])
        words[base : base + len(layout.words)] = layout.words
        lane += count
        base += len(layout.words)


def _frame_error(code: int) -> PayloadError:
    text = rans.STATUS_TEXT.get(int(code), f"status {int(code)}")
    return PayloadError("corrupt", f"an entropy lane of this frame is corrupt: {text}")
