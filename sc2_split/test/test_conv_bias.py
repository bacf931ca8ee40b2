"""Convolution biases added by the Triton kernel (models/conv_bias.py): the values torch's own
addition gives, bit for bit, under Triton's interpreter on the CPU and on a CUDA device; and the
rewrite leaves cuDNN's fused convolutions and convolutions without a bias as they are."""

import copy

import pytest
import torch
from kernel_fixtures import run_interpreted
from sc2_split.models.conv_bias import ConvBias, add_biases_by_kernel
from sc2_split.models.conv_relu import ConvReLU
from torch import nn

INTERPRETED_BIAS = """
import torch
from sc2_split.models.conv_bias import add_bias_
torch.manual_seed(0)
for dtype in (torch.float16, torch.float32):
    for channels in (3, 12, 256):  # a block of 4,096 values holds a fraction of a row, or many
        y = torch.randn(2, channels, 5, 7).to(dtype).contiguous(memory_format=torch.channels_last)
        bias = torch.randn(channels)
        want = y + bias.to(dtype)[:, None, None]
        got = add_bias_(y.clone(memory_format=torch.channels_last), bias)
        assert torch.equal(got, want), (dtype, channels)
        nchw = y.contiguous()  # not channels-last: torch's addition
        assert torch.equal(add_bias_(nchw.clone(), bias), nchw + bias.to(dtype)[:, None, None])
print("kernel ok")
"""


def test_the_kernel_adds_as_torch_bit_for_bit() -> None:
    run_interpreted(INTERPRETED_BIAS)


def test_the_rewrite_takes_plain_convolutions_with_a_bias_only() -> None:
    fused = ConvReLU(nn.Conv2d(8, 8, 3, padding=1))
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), fused, nn.Conv2d(8, 8, 1, bias=False))
    rewritten = copy.deepcopy(model)
    assert add_biases_by_kernel(rewritten) == 1
    assert isinstance(rewritten[0], ConvBias) and isinstance(rewritten[1].conv, nn.Conv2d)
    assert type(rewritten[2]) is nn.Conv2d
    assert add_biases_by_kernel(rewritten) == 0  # a ConvBias's own convolution stays
    x = torch.randn(2, 4, 9, 9)
    with torch.inference_mode():
        assert torch.equal(rewritten(x), model(x))  # on the CPU, the convolution as it is


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("half", [True, False])
def test_on_cuda_as_torchs_bias_bit_for_bit(half: bool) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 128, 3, padding=1).cuda().to(memory_format=torch.channels_last)
    x = torch.randn(4, 64, 40, 56, device="cuda").to(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cuda", torch.float16, enabled=half):
        want, got = conv(x), ConvBias(conv)(x)
    assert got.dtype == want.dtype and got.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(got, want)
