"""ROI align over channels-last feature maps in their own dtype: a block a box, a thread a channel.

torchvision's roi_align reads NCHW, and autocast runs it in float32, so the batched heads copied each
pooled level to NCHW float32 first (1.6 GB at a ResNet-50's batch of 32), and its threads, one an
output value, each place their samples and read each corner's channel from its own place: 13 of a
ResNet-50 tail's 64 ms of kernel time per batch of 32 (H200). Here the levels stay as the FPN wrote
them (NHWC, float16 under autocast). A block first places its box's samples (their corners and
weights, in shared memory), then its threads read each corner's channels side by side, sum them in
float32, and write the box's (h, w, C) values once, rounded to the features' dtype. A launch covers
every box and pools those of its level; the others' blocks return at once, so no box list is
gathered on the host and a CUDA graph can capture it.

The arithmetic is torchvision's CUDA kernel's (aligned=False, as MultiScaleRoIAlign calls it), in
float32, for a fixed sampling grid. Imported only on a CUDA tail (batched_heads): it needs
numba-cuda, and torch for `pool`.
"""

import math
from typing import Any

import numpy as np
import torch
from numba import cuda, float32, int32
from torch import Tensor

from sc2_split.models.numba_streams import current_stream, device_array

MAX_THREADS = 256
# A box's samples (bins x the sampling grid), whose corners and weights a block holds in shared memory:
# 196 for Faster R-CNN's 7 x 7 bins of 2 x 2 samples.
MAX_SAMPLES = 1024

# numba's device arrays, or host arrays under numba's CUDA simulator.
CudaArray = Any


@cuda.jit(device=True)
def _corners(height, width, y, x, corners, weights, s):
    """torchvision's bilinear_interpolate at (y, x), as sample s's four corners (y_low, x_low, y_high,
    x_high; y_low = -1 for a sample outside the map, which adds nothing) and their weights."""
    if y < float32(-1.0) or y > height or x < float32(-1.0) or x > width:
        corners[s, 0] = -1
        return
    y = max(y, float32(0.0))
    x = max(x, float32(0.0))
    y_low, x_low = int32(y), int32(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float32(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float32(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - float32(y_low), x - float32(x_low)
    hy, hx = float32(1.0) - ly, float32(1.0) - lx
    corners[s, 0], corners[s, 1], corners[s, 2], corners[s, 3] = y_low, x_low, y_high, x_high
    weights[s, 0], weights[s, 1], weights[s, 2], weights[s, 3] = hy * hx, hy * lx, ly * hx, ly * lx


@cuda.jit
def _kernel(features, rois, levels, level, scale, grid, out):
    """Box blockIdx.x, if levels[box] == level: out[box] (h, w, C) from features (B, H, W, C), its
    row of rois an (image, x1, y1, x2, y2) float32 row in the image's pixels, with grid x grid samples
    a bin. The block's threads first place the box's samples, then pool a channel each."""
    corners = cuda.shared.array((MAX_SAMPLES, 4), int32)
    weights = cuda.shared.array((MAX_SAMPLES, 4), float32)
    n, t, step = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    if levels[n] != level:  # uniform across the block
        return
    height, width, channels = features.shape[1], features.shape[2], features.shape[3]
    bins_w = out.shape[2]
    bins, per_bin = out.shape[1] * bins_w, grid * grid
    b = int32(rois[n, 0])
    start_w, start_h = rois[n, 1] * scale, rois[n, 2] * scale
    roi_w = max(rois[n, 3] * scale - start_w, float32(1.0))
    roi_h = max(rois[n, 4] * scale - start_h, float32(1.0))
    bin_h, bin_w = roi_h / float32(out.shape[1]), roi_w / float32(bins_w)
    half, steps = float32(0.5), float32(grid)
    for s in range(t, bins * per_bin, step):
        ph, pw = (s // per_bin) // bins_w, (s // per_bin) % bins_w
        iy, ix = (s % per_bin) // grid, (s % per_bin) % grid
        # torchvision's order of operations
        y = start_h + float32(ph) * bin_h + (float32(iy) + half) * bin_h / steps
        x = start_w + float32(pw) * bin_w + (float32(ix) + half) * bin_w / steps
        _corners(height, width, y, x, corners, weights, s)
    cuda.syncthreads()
    count = float32(max(per_bin, 1))
    for c in range(t, channels, step):
        for i in range(bins):
            total = float32(0.0)
            for s in range(i * per_bin, (i + 1) * per_bin):
                y_low = corners[s, 0]
                if y_low >= 0:
                    x_low, y_high, x_high = corners[s, 1], corners[s, 2], corners[s, 3]
                    total += (
                        weights[s, 0] * float32(features[b, y_low, x_low, c])
                        + weights[s, 1] * float32(features[b, y_low, x_high, c])
                        + weights[s, 2] * float32(features[b, y_high, x_low, c])
                        + weights[s, 3] * float32(features[b, y_high, x_high, c])
                    )
            out[n, i // bins_w, i % bins_w, c] = total / count


def supports(output_size: tuple[int, int], sampling_ratio: int) -> bool:
    """Whether the kernel pools these bins: a fixed sampling grid (not torchvision's adaptive one,
    sampling_ratio <= 0, whose size varies by box) of at most MAX_SAMPLES samples a box."""
    return sampling_ratio > 0 and output_size[0] * output_size[1] * sampling_ratio**2 <= MAX_SAMPLES


def launch(
    features: CudaArray,
    rois: CudaArray,
    levels: CudaArray,
    level: int,
    scale: float,
    sampling_ratio: int,
    out: CudaArray,
    stream: object = 0,
    threads: int = 0,
) -> None:
    """Pools into `out` ((N, h, w, C), the features' dtype) each box whose entry of `levels` is
    `level`, from (B, H, W, C) `features` at `scale` of the image's pixels; (N, 5) float32 `rois`;
    `sampling_ratio` as `supports` takes it. `threads` a block: by default a warp's multiple that
    covers the channels, up to MAX_THREADS."""
    if not supports(out.shape[1:3], sampling_ratio):
        raise ValueError(
            f"{sampling_ratio} samples a side for {out.shape[1:3]} bins: more than {MAX_SAMPLES}"
        )
    threads = threads or min(MAX_THREADS, 32 * math.ceil(features.shape[3] / 32))
    _kernel[len(rois), threads, stream](
        features, rois, levels, np.int64(level), np.float32(scale), np.int32(sampling_ratio), out
    )


def pool(
    maps: list[Tensor], scales: list[float], rois: Tensor, levels: Tensor, sampling_ratio: int, out: Tensor
) -> Tensor:
    """MultiScaleRoIAlign into `out`, an (N, C, h, w) view of an (N, h, w, C) CUDA tensor, from
    (B, C, H, W) channels-last `maps` (one a level, each at its scale), with (N, 5) `rois` and each
    box's level. On the current stream, without waiting on it."""
    stream = current_stream(out.device)
    boxes, box_levels = device_array(rois.float().contiguous()), device_array(levels.contiguous())
    pooled = device_array(out.permute(0, 2, 3, 1))
    for level, (features, scale) in enumerate(zip(maps, scales, strict=True)):
        nhwc = device_array(features.permute(0, 2, 3, 1).to(out.dtype).contiguous())
        launch(nhwc, boxes, box_levels, level, scale, sampling_ratio, pooled, stream)
    return out


def compiles(device: torch.device) -> None:
    """Pools a box from float16 and float32 maps on `device`: raises where this runtime cannot
    compile or launch the kernel, before a tail depends on it."""
    for dtype in (torch.float16, torch.float32):
        maps = [torch.zeros((1, 8, 4, 4), dtype=dtype, device=device).to(memory_format=torch.channels_last)]
        rois = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0]], device=device)
        out = torch.empty((1, 2, 2, 8), dtype=dtype, device=device).permute(0, 3, 1, 2)
        pool(maps, [1.0], rois, torch.zeros(1, dtype=torch.int64, device=device), 2, out)
    torch.cuda.synchronize(device)
