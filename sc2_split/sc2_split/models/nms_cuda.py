"""Greedy NMS within each group of boxes, every group in one CUDA launch: a block a group.

The dense suppression (batched_heads._fixed_point) builds every group's IoU matrix and iterates
Cluster-NMS to its fixed point: a few passes over (groups x boxes x boxes) values. Here a block
holds its group's boxes in shared memory and walks them by score, as greedy NMS does: each kept box
tests only the boxes after it that are still in, one thread a box. The IoU is torchvision's in
float32, operation by operation: numba compiles without fast math, so no multiply-add contracts and
divisions are IEEE ones.

Imported only on a CUDA tail (batched_heads): it needs numba-cuda, and torch for `kept`.
"""

from typing import Any

import numpy as np
import torch
from numba import cuda, float32
from torch import Tensor

from sc2_split.models.numba_streams import current_stream, device_array

THREADS_PER_BLOCK = 256
# The largest group held in shared memory: 5 floats a box (its corners and its state), 40 KiB of
# the 48 a block may take without opting in. The tail's groups are at most its top-n (1,000).
MAX_GROUP = 2048
_SHARED_FLOATS_PER_BOX = 5

# numba's device arrays, or host arrays under numba's CUDA simulator.
CudaArray = Any


@cuda.jit
def _kernel(boxes, starts, counts, threshold, kept):
    """Group blockIdx.x: boxes[4 * starts[g]:] (x1 y1 x2 y2 flat, by score descending), counts[g]
    of them; kept[starts[g] + j] = 1 if greedy NMS keeps box j, else 0."""
    shared = cuda.shared.array(0, float32)  # corners (4 n), then each box's state (n): 1 = suppressed
    g, t, step = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    start, n = starts[g], counts[g]
    state = 4 * n
    for k in range(t, 4 * n, step):
        shared[k] = boxes[4 * start + k]
    for j in range(t, n, step):
        shared[state + j] = 0
    cuda.syncthreads()
    zero = float32(0)
    for i in range(n):
        # Uniform across the block: states change only in a kept box's turn, which ends in a barrier.
        if shared[state + i] == 0:
            x1, y1, x2, y2 = shared[4 * i], shared[4 * i + 1], shared[4 * i + 2], shared[4 * i + 3]
            area = (x2 - x1) * (y2 - y1)
            for j in range(i + 1 + t, n, step):
                if shared[state + j] == 0:
                    a1, b1, a2, b2 = shared[4 * j], shared[4 * j + 1], shared[4 * j + 2], shared[4 * j + 3]
                    width = min(x2, a2) - max(x1, a1)
                    height = min(y2, b2) - max(y1, b1)
                    inter = (width if width > zero else zero) * (height if height > zero else zero)
                    if inter / (area + (a2 - a1) * (b2 - b1) - inter) > threshold:
                        shared[state + j] = 1
            cuda.syncthreads()
    for j in range(t, n, step):
        kept[start + j] = 1 if shared[state + j] == 0 else 0


def launch(
    boxes: CudaArray,
    starts: CudaArray,
    counts: CudaArray,
    width: int,
    iou_threshold: float,
    kept: CudaArray,
    stream: object = 0,
    threads: int = THREADS_PER_BLOCK,
) -> None:
    """Fills `kept` (uint8, a flag a box) for flat float32 `boxes` (4 a box, groups one after
    another, each by score descending), groups of `counts` boxes from `starts`; `width`: the
    largest count, at most MAX_GROUP."""
    if width > MAX_GROUP:
        raise ValueError(f"groups of up to {MAX_GROUP} boxes, not {width}")
    shared_bytes = 4 * _SHARED_FLOATS_PER_BOX * max(width, 1)
    threshold = np.float32(iou_threshold)  # as torch compares a float32 IoU with a Python float
    _kernel[len(counts), threads, stream, shared_bytes](boxes, starts, counts, threshold, kept)


def kept(boxes: Tensor, counts: Tensor, iou_threshold: float) -> Tensor:
    """(G, M) bool, what greedy NMS keeps of each group's first `counts` boxes of (G, M, 4) float32
    CUDA `boxes`, each group's by score descending. On the current stream, without waiting on it
    and without a tensor from the host: a CUDA graph can capture it."""
    groups, width = boxes.shape[:2]
    starts = torch.arange(groups, device=boxes.device) * width
    flags = torch.zeros(groups * width, dtype=torch.uint8, device=boxes.device)
    arrays = [device_array(t) for t in (boxes.reshape(-1), starts, counts, flags)]
    launch(arrays[0], arrays[1], arrays[2], width, iou_threshold, arrays[3], current_stream(boxes.device))
    return flags.view(torch.bool).view(groups, width)
