"""A convolution's bias added by a Triton kernel that reads channels-last maps as whole vectors.

torch adds a cuDNN convolution's bias as a pass of its own, and over a channels-last map its
broadcast addition does not vectorise: 34 such passes took 5.4 of a ResNet-50 tail's 39 ms of kernel
time per batch of 32 (H200), at about 0.8 TB/s. Where no ReLU follows (the downsampling convolutions,
the FPN's 3x3 outputs) cuDNN cannot take the bias into its epilogue (conv_relu.py), so here the
convolution runs without it and the kernel adds it in place, in float32 before the output's rounding,
with the bias rounded to the output's dtype first, as torch does: the same values, bit for bit.
Imported only on a CUDA tail; it needs Triton, which CUDA builds of torch bring.
"""

import torch
import triton
import triton.language as tl
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812  (the torch idiom)

from sc2_split.models.conv_relu import ConvReLU, is_plain_conv

BLOCK = 4096  # values a program


@triton.jit
def _kernel(y, bias, total, channels: tl.constexpr, block: tl.constexpr):
    """y[i] += bias[i % channels] for the block of flat indices of program_id(0)."""
    offsets = tl.program_id(0).to(tl.int64) * block + tl.arange(0, block)
    keep = offsets < total
    value = tl.load(y + offsets, mask=keep).to(tl.float32)
    value += tl.load(bias + offsets % channels, mask=keep).to(tl.float32)
    tl.store(y + offsets, value.to(y.dtype.element_ty), mask=keep)


def add_bias_(y: Tensor, bias: Tensor) -> Tensor:
    """y += bias (one value a channel), in place: by the kernel where y's channels are its innermost
    dimension (channels-last), else by torch."""
    bias = bias.to(y.dtype)
    if y.dim() != 4 or not y.is_contiguous(memory_format=torch.channels_last):
        return y.add_(bias[:, None, None])
    total = y.numel()
    _kernel[(triton.cdiv(total, BLOCK),)](y, bias, total, channels=y.shape[1], block=BLOCK, num_warps=8)
    return y


class ConvBias(nn.Module):
    """conv(x), its bias added by `add_bias_` on CUDA tensors; elsewhere the convolution as it is."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        conv = self.conv
        if not x.is_cuda or conv.bias is None:
            return conv(x)
        args = (conv.stride, conv.padding, conv.dilation, conv.groups)
        return add_bias_(F.conv2d(x, conv.weight, None, *args), conv.bias)


def add_biases_by_kernel(module: nn.Module) -> int:
    """Rewrites `module` in place: each plain 2-d convolution with a bias (zero padding given as
    numbers) becomes a ConvBias, but for those cuDNN already fuses (ConvReLU's). Returns the number
    rewritten."""
    rewritten = 0
    for parent in list(module.modules()):
        if isinstance(parent, ConvReLU | ConvBias):
            continue
        for name, child in list(parent.named_children()):
            if is_plain_conv(child) and child.bias is not None:
                setattr(parent, name, ConvBias(child))
                rewritten += 1
    return rewritten
