"""The GPU decoder of entropy version 2: every lane of a batch of frames in one CUDA launch, one
thread a lane, the float latents written straight into the caller's CUDA memory.

The lane decoder is rans.decode_lane compiled as a device function, the very source of the CPU
reference decoder, so both give the same latents bit for bit. Each block first copies the CDF
tables into shared memory (the binary search reads them several times a symbol). A batch crosses
to the GPU in two copies from pinned staging: the frames' status words (zero) with the lane table,
and the lanes' words. Imported only where CUDA is (the tail on a CUDA device): it needs
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
def _decode_kernel(words, meta, frame_slots, lane_total, per_channel, plane, channels, cdf, width, cdf_length,
                   offset, precision, medians, buckets, out, frame_size, shared_table):  # fmt: skip
    """Lane g of the batch: its row of the lane table, meta[frame_slots + LANE_COLUMNS * g:], says
    frame, words[begin:end], first symbol and symbols; meta[frame] gets the frame's worst status."""
    table = cdf
    if shared_table:
        table = cuda.shared.array(0, int32)
        for i in range(cuda.threadIdx.x, cdf.size, cuda.blockDim.x):
            table[i] = cdf[i]
        cuda.syncthreads()
    g = cuda.grid(1)
    if g < lane_total:
        at = frame_slots + LANE_COLUMNS * g
        frame = meta[at]
        code = _decode_lane(
            words, meta[at + 1], meta[at + 2], meta[at + 3], meta[at + 4], per_channel, plane, channels,
            table, width, cdf_length, offset, precision, medians, buckets, out, frame * frame_size, True,
        )  # fmt: skip
        if code != rans.OK:
            cuda.atomic.max(meta, frame, code)


class _Buffers:
    """Pinned staging and device memory for batches of up to `frames` frames, `lanes` lanes and `words`
    words, and their typed views, made once: per batch only the used parts are copied, as each
    device view costs numba-cuda tens of microseconds. meta (int64) is the frames' status, then the
    lane table (a row of LANE_COLUMNS a lane)."""

    def __init__(self, frames: int, lanes: int, words: int) -> None:
        self.frames, self.lanes, self.words = frames, lanes, words
        meta_bytes = 8 * (frames + LANE_COLUMNS * lanes)
        size = meta_bytes + 2 * words
        pinned = cuda.pinned_array(size, np.uint8)
        device = cuda.device_array(size, np.uint8)
        self.meta_host = pinned[:meta_bytes].view(np.int64)
        self.words_host = pinned[meta_bytes:].view(np.uint16)
        self.meta = device[:meta_bytes].view(np.int64)
        self.words_device = device[meta_bytes:].view(np.uint16)
        self.status = self.meta[:frames]
        self.status_host = cuda.pinned_array(frames, np.int64)

    def fits(self, frames: int, lanes: int, words: int) -> bool:
        return frames <= self.frames and lanes <= self.lanes and words <= self.words


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
        self._buffers: _Buffers | None = None
        self._torch_stream = self._stream = None
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
        buffers = self._buffers_for(frames, lane_total, word_total)
        slots = buffers.frames
        meta_used = slots + LANE_COLUMNS * lane_total
        buffers.meta_host[:frames] = 0
        info = buffers.meta_host[slots:meta_used].reshape(lane_total, LANE_COLUMNS)
        _fill_lane_table(layouts, info, buffers.words_host)
        buffers.meta[:meta_used].copy_to_device(buffers.meta_host[:meta_used], stream=stream)
        buffers.words_device[:word_total].copy_to_device(buffers.words_host[:word_total], stream=stream)
        blocks = -(-lane_total // THREADS_PER_BLOCK)
        _decode_kernel[blocks, THREADS_PER_BLOCK, stream, self._shared_bytes](
            buffers.words_device, buffers.meta, slots, lane_total, shape[0] * plane, plane,
            self.tables.channels, self._cdf, self._width, self._cdf_length, self._offset,
            self.tables.precision, self._medians, self._buckets, out_array, frame_size,
            self._shared_bytes > 0,
        )  # fmt: skip
        buffers.status.copy_to_host(buffers.status_host, stream=stream)
        if wait is not None:
            wait()
        elif stream:
            stream.synchronize()
        else:
            cuda.synchronize()
        return [None if code == rans.OK else _frame_error(code) for code in buffers.status_host[:frames]]

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
            self._stream = cuda.external_stream(self._torch_stream.cuda_stream)
        side = self._torch_stream
        # Allocated in the decoding stream's order; a consumer on another stream must record_stream it.
        with torch.cuda.stream(side):
            batch = torch.empty((len(layouts) * shape[0], *shape[1:]), dtype=torch.float32, device=device)
        done = torch.cuda.Event(blocking=True)

        def wait() -> None:
            done.record(side)
            done.synchronize()

        return batch, self.decode_into(layouts, shape, batch.view(-1), self._stream, wait)

    def _buffers_for(self, frames: int, lanes: int, words: int) -> _Buffers:
        """Buffers that fit the batch: the last ones, or larger (twice, or what the batch needs)."""
        old = self._buffers
        if old is None or not old.fits(frames, lanes, words):
            grown = (0, 0, 0) if old is None else (2 * old.frames, 2 * old.lanes, 2 * old.words)
            self._buffers = _Buffers(max(frames, grown[0], 64), max(lanes, grown[1]), max(words, grown[2]))
        return self._buffers


def _fill_lane_table(layouts: Sequence[lanes.LaneLayout], info: np.ndarray, words: np.ndarray) -> None:
    """Every lane of the batch as a row of `info` (frame, begin, end, first symbol, symbols), and the
    frames' words end to end in `words` (begin and end index them)."""
    lane, base = 0, 0
    for frame, layout in enumerate(layouts):
        count = len(layout.bounds) - 1
        rows = info[lane : lane + count]
        rows[:, 0] = frame
        np.add(layout.bounds[:-1], base, out=rows[:, 1])
        np.add(layout.bounds[1:], base, out=rows[:, 2])
        np.multiply(np.arange(count), layout.lane_size, out=rows[:, 3])
        np.minimum(layout.total - rows[:, 3], layout.lane_size, out=rows[:, 4])
        size = len(layout.words)
        # As bytes: a plain copy whatever the payload's alignment in its message.
        words[base : base + size].view(np.uint8)[:] = layout.words.view(np.uint8)
        lane += count
        base += size


def _frame_error(code: int) -> PayloadError:
    text = rans.STATUS_TEXT.get(int(code), f"status {int(code)}")
    return PayloadError("corrupt", f"an entropy lane of this frame is corrupt: {text}")
