"""ROI align over channels-last feature maps in their own dtype, in Triton: a program a box, each
sample's four corners read as whole rows of channels.

torchvision's roi_align reads NCHW, and autocast runs it in float32, so the batched heads copied each
pooled level to NCHW float32 first (1.6 GB at a ResNet-50's batch of 32). Here the levels stay as
the FPN wrote them (NHWC, float16 under autocast), so a corner's channels lie side by side and a
program loads them as one vector, 8 channels a thread. A program places each sample itself (scalar
arithmetic, the same for all its threads), sums the bin's samples in float32, and writes the bin's
channels once, rounded to the features' dtype. A launch covers every box and pools those of its
level; the others' programs do nothing, so no box list is gathered on the host. On an H200 it pools
a ResNet-50 batch of 32 (32,000 boxes) in 1.2 ms, where a numba kernel with a thread a channel, one
value a load, took 7.9 and torchvision's 9.3.

The arithmetic is torchvision's CUDA kernel's (aligned=False, as MultiScaleRoIAlign calls it), in
float32, for a fixed sampling grid. A sample outside the map adds nothing, and its corners are
clamped into the map, so that not even a NaN box reads outside it. Imported only on a CUDA tail
(batched_heads); it needs Triton, which CUDA builds of torch bring.
"""

import torch
import triton
import triton.language as tl
from torch import Tensor

# At most this many samples a box (bins x the sampling grid, which is unrolled into the kernel, so
# that a huge grid would compile for long): 196 for Faster R-CNN's 7 x 7 bins of 2 x 2 samples.
MAX_SAMPLES = 1024
WARPS = 1  # a program's warps: 256 channels are 8 a thread, one 16-byte load (1.2 ms; 2 warps 1.4)


@triton.jit
def _kernel(
    features, rois, levels, level, scale, height, width, f_image, f_row, f_col,
    out, o_box, o_row, o_col,
    channels: tl.constexpr, block: tl.constexpr, bins_h: tl.constexpr, bins_w: tl.constexpr,
    side: tl.constexpr,
):  # fmt: skip
    """Box program_id(0), if levels[box] == level: out[box] (h, w, C) from features (B, H, W, C) with
    C contiguous (element strides f_image, f_row, f_col), its row of rois an (image, x1, y1, x2, y2)
    float32 row in the image's pixels, with side x side samples a bin."""
    n = tl.program_id(0)
    if tl.load(levels + n) == level:
        c = tl.arange(0, block)
        channel = c < channels
        row = rois + n * 5
        start_w = tl.load(row + 1) * scale
        start_h = tl.load(row + 2) * scale
        roi_w = tl.maximum(tl.load(row + 3) * scale - start_w, 1.0)
        roi_h = tl.maximum(tl.load(row + 4) * scale - start_h, 1.0)
        bin_h = roi_h / bins_h
        bin_w = roi_w / bins_w
        image = features + tl.load(row).to(tl.int64) * f_image + c
        last_y, last_x = height - 1, width - 1
        for ph in range(bins_h):
            for pw in range(bins_w):
                total = tl.zeros([block], tl.float32)
                for iy in tl.static_range(side):
                    # torchvision's order of operations
                    y = start_h + ph * bin_h + (iy + 0.5) * bin_h / side
                    for ix in tl.static_range(side):
                        x = start_w + pw * bin_w + (ix + 0.5) * bin_w / side
                        inside = (y >= -1.0) & (y <= height) & (x >= -1.0) & (x <= width)
                        yc, xc = tl.maximum(y, 0.0), tl.maximum(x, 0.0)
                        # Clamped into the map, so that no sample reads outside it, not even a NaN's.
                        y_low = tl.minimum(tl.maximum(yc.to(tl.int32), 0), last_y)
                        x_low = tl.minimum(tl.maximum(xc.to(tl.int32), 0), last_x)
                        bottom, right = y_low >= last_y, x_low >= last_x
                        y_high = tl.where(bottom, last_y, y_low + 1)
                        x_high = tl.where(right, last_x, x_low + 1)
                        ly = tl.where(bottom, 0.0, yc - y_low)
                        lx = tl.where(right, 0.0, xc - x_low)
                        hy, hx = 1.0 - ly, 1.0 - lx
                        top_row, bottom_row = image + y_low * f_row, image + y_high * f_row
                        sample = hy * hx * tl.load(top_row + x_low * f_col, mask=channel).to(tl.float32)
                        sample += hy * lx * tl.load(top_row + x_high * f_col, mask=channel).to(tl.float32)
                        sample += ly * hx * tl.load(bottom_row + x_low * f_col, mask=channel).to(tl.float32)
                        sample += ly * lx * tl.load(bottom_row + x_high * f_col, mask=channel).to(tl.float32)
                        total += tl.where(inside, sample, 0.0)  # a sample outside adds nothing
                pooled = total / (side * side)
                target = out + n * o_box + ph * o_row + pw * o_col + c
                tl.store(target, pooled.to(out.dtype.element_ty), mask=channel)


def supports(output_size: tuple[int, int], sampling_ratio: int) -> bool:
    """Whether the kernel pools these bins: a fixed sampling grid (not torchvision's adaptive one,
    sampling_ratio <= 0, whose size varies by box) of at most MAX_SAMPLES samples a box."""
    return sampling_ratio > 0 and output_size[0] * output_size[1] * sampling_ratio**2 <= MAX_SAMPLES


def launch(
    features: Tensor,
    rois: Tensor,
    levels: Tensor,
    level: int,
    scale: float,
    sampling_ratio: int,
    out: Tensor,
    warps: int = WARPS,
) -> None:
    """Pools into `out` ((N, h, w, C), C contiguous, the features' dtype) each box whose entry of
    `levels` is `level`, from (B, H, W, C) `features` (C contiguous) at `scale` of the image's pixels;
    (N, 5) float32 `rois`; `sampling_ratio` as `supports` takes it. On the current stream."""
    if not supports(out.shape[1:3], sampling_ratio):
        raise ValueError(
            f"{sampling_ratio} samples a side for {tuple(out.shape[1:3])} bins: more than {MAX_SAMPLES}"
        )
    if features.stride(3) != 1 or out.stride(3) != 1:
        raise ValueError("the features' and the output's channels must be contiguous")
    channels = features.shape[3]
    _kernel[(len(rois),)](
        features, rois, levels, level, scale, features.shape[1], features.shape[2],
        features.stride(0), features.stride(1), features.stride(2),
        out, out.stride(0), out.stride(1), out.stride(2),
        channels=channels, block=triton.next_power_of_2(channels), bins_h=out.shape[1], bins_w=out.shape[2],
        side=sampling_ratio, num_warps=warps,
    )  # fmt: skip


def pool(
    maps: list[Tensor], scales: list[float], rois: Tensor, levels: Tensor, sampling_ratio: int, out: Tensor
) -> Tensor:
    """MultiScaleRoIAlign into `out`, an (N, C, h, w) view of an (N, h, w, C) CUDA tensor, from
    (B, C, H, W) channels-last `maps` (one a level, each at its scale), with (N, 5) `rois` and each
    box's level. On the current stream, without waiting on it."""
    boxes, box_levels = rois.float().contiguous(), levels.contiguous()
    pooled = out.permute(0, 2, 3, 1)
    for level, (features, scale) in enumerate(zip(maps, scales, strict=True)):
        nhwc = features.permute(0, 2, 3, 1).to(out.dtype)
        launch(nhwc, boxes, box_levels, level, scale, sampling_ratio, pooled)
    return out


def compiles(device: torch.device) -> None:
    """Pools a box from float16 and float32 maps on `device`: raises where Triton cannot compile or
    launch the kernel, before a tail depends on it."""
    for dtype in (torch.float16, torch.float32):
        maps = [torch.zeros((1, 8, 4, 4), dtype=dtype, device=device).to(memory_format=torch.channels_last)]
        rois = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0]], device=device)
        out = torch.empty((1, 2, 2, 8), dtype=dtype, device=device).permute(0, 3, 1, 2)
        pool(maps, [1.0], rois, torch.zeros(1, dtype=torch.int64, device=device), 2, out)
    torch.cuda.synchronize(device)
