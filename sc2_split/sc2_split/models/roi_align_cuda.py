"""ROI align over channels-last feature maps in their own dtype: a block a box, a thread a channel.

torchvision's roi_align reads NCHW, and autocast runs it in float32, so the batched heads copied each
pooled level to NCHW float32 first (1.6 GB at a ResNet-50's batch of 32), and its threads, one an
output value, read the four corners of a sample from four places per channel: 13 of a ResNet-50
tail's 64 ms of kernel time per batch of 32 (H200). Here the levels stay as the FPN wrote them
(NHWC, float16 under autocast): a block's threads read each corner's channels side by side, sum
the samples in float32, and write the box's (h, w, C) values once, rounded to the features' dtype.
A launch covers every box and pools those of its level; the others' blocks return at once, so no
box list is gathered on the host and a CUDA graph can capture it.

The arithmetic is torchvision's CUDA kernel's (aligned=False, as MultiScaleRoIAlign calls it), in
float32. Imported only on a CUDA tail (batched_heads): it needs numba-cuda, and torch for `pool`.
"""

import math
from typing import Any

import numpy as np
import torch
from numba import cuda, float32, int32
from torch import Tensor

from sc2_split.models.numba_streams import current_stream, device_array

MAX_THREADS = 256

# numba's device arrays, or host arrays under numba's CUDA simulator.
CudaArray = Any


@cuda.jit(device=True)
def _bilinear(features, b, c, height, width, y, x):
    """torchvision's bilinear_interpolate at (y, x) of image b's channel c, in float32."""
    if y < float32(-1.0) or y > height or x < float32(-1.0) or x > width:
        return float32(0.0)
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
    v1 = float32(features[b, y_low, x_low, c])
    v2 = float32(features[b, y_low, x_high, c])
    v3 = float32(features[b, y_high, x_low, c])
    v4 = float32(features[b, y_high, x_high, c])
    return hy * hx * v1 + hy * lx * v2 + ly * hx * v3 + ly * lx * v4


@cuda.jit
def _kernel(features, rois, levels, level, scale, sampling_ratio, out):
    """Box blockIdx.x, if levels[box] == level: out[box] (h, w, C) from features (B, H, W, C), its
    row of rois an (image, x1, y1, x2, y2) float32 row in the image's pixels."""
    n = cuda.blockIdx.x
    if levels[n] != level:
        return
    height, width, channels = features.shape[1], features.shape[2], features.shape[3]
    bins_h, bins_w = out.shape[1], out.shape[2]
    b = int32(rois[n, 0])
    start_w, start_h = rois[n, 1] * scale, rois[n, 2] * scale
    roi_w = max(rois[n, 3] * scale - start_w, float32(1.0))
    roi_h = max(rois[n, 4] * scale - start_h, float32(1.0))
    bin_h, bin_w = roi_h / float32(bins_h), roi_w / float32(bins_w)
    grid_h = sampling_ratio if sampling_ratio > 0 else int32(math.ceil(roi_h / float32(bins_h)))
    grid_w = sampling_ratio if sampling_ratio > 0 else int32(math.ceil(roi_w / float32(bins_w)))
    count = float32(max(grid_h * grid_w, 1))
    half, rows, columns = float32(0.5), float32(grid_h), float32(grid_w)
    for c in range(cuda.threadIdx.x, channels, cuda.blockDim.x):
        for ph in range(bins_h):
            top = start_h + float32(ph) * bin_h
            for pw in range(bins_w):
                left = start_w + float32(pw) * bin_w
                total = float32(0.0)
                for iy in range(grid_h):
                    y = top + (float32(iy) + half) * bin_h / rows  # torchvision's order of operations
                    for ix in range(grid_w):
                        x = left + (float32(ix) + half) * bin_w / columns
                        total += _bilinear(features, b, c, height, width, y, x)
                out[n, ph, pw, c] = total / count


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
    `level`, from (B, H, W, C) `features` at `scale` of the image's pixels; (N, 5) float32 `rois`.
    `threads` a block: by default a warp's multiple that covers the channels, up to MAX_THREADS."""
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
