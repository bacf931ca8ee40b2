"""The FPN's top-down sums as in-place additions through broadcast views (models/top_down.py) give
torchvision's FPN outputs: on CPU tensors the same arithmetic in another order, on CUDA within
float16's rounding."""

from collections import OrderedDict

import pytest
import torch
from sc2_split.models.top_down import TopDownFPN, top_down
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

CHANNELS = [8, 16, 32, 24]


def pyramid(
    sizes: list[tuple[int, int]], generator: torch.Generator
) -> tuple[FeaturePyramidNetwork, OrderedDict]:
    """An FPN with biases that are not zero (torchvision starts them at zero) and its inputs."""
    fpn = FeaturePyramidNetwork(CHANNELS, 16, extra_blocks=LastLevelMaxPool()).eval()
    for conv in fpn.modules():
        if isinstance(conv, torch.nn.Conv2d):
            conv.bias.data = torch.randn(conv.out_channels, generator=generator)
    maps = OrderedDict(
        (str(i), torch.randn((2, c, *hw), generator=generator))
        for i, (c, hw) in enumerate(zip(CHANNELS, sizes, strict=True))
    )
    return fpn, maps


# Halving sizes, as images padded to the FPN's stride give; and sizes of which some are not exactly
# twice the next, where the sum falls back to torchvision's upsampling.
SIZES = {"halving": [(24, 32), (12, 16), (6, 8), (3, 4)], "uneven": [(25, 33), (13, 17), (6, 8), (3, 4)]}


@pytest.mark.parametrize("sizes", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_top_down_gives_the_fpns_outputs(sizes: list, layout: torch.memory_format) -> None:
    fpn, maps = pyramid(sizes, torch.Generator().manual_seed(5))
    maps = OrderedDict((name, level.to(memory_format=layout)) for name, level in maps.items())
    fpn = fpn.to(memory_format=layout)
    with torch.inference_mode():
        want, got = fpn(maps), top_down(fpn, maps)
    assert list(got) == list(want) == ["0", "1", "2", "3", "pool"]
    for name, level in want.items():
        assert got[name].shape == level.shape
        torch.testing.assert_close(got[name], level, rtol=1e-5, atol=1e-5)


def test_on_cpu_tensors_it_is_torchvisions_fpn() -> None:
    fpn, maps = pyramid(SIZES["halving"], torch.Generator().manual_seed(6))
    with torch.inference_mode():
        want, got = fpn(maps), TopDownFPN(fpn)(maps)
    for name, level in want.items():
        assert torch.equal(got[name], level)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_in_float16_within_its_rounding() -> None:
    fpn, maps = pyramid(SIZES["halving"], torch.Generator().manual_seed(7))
    fpn = fpn.cuda().to(memory_format=torch.channels_last)
    maps = OrderedDict(
        (name, level.cuda().to(memory_format=torch.channels_last)) for name, level in maps.items()
    )
    with torch.inference_mode(), torch.autocast("cuda", torch.float16):
        want, got = fpn(maps), TopDownFPN(fpn)(maps)
    for name, level in want.items():
        assert got[name].dtype == torch.float16
        torch.testing.assert_close(
            got[name].float(), level.float(), rtol=1e-2, atol=1e-2 * float(level.abs().max())
        )
