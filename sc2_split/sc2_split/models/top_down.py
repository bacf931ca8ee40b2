"""The FPN's top-down pathway in the features' dtype, each level's sum as one pass over it.

torchvision's FPN upsamples the coarser level (nearest) to the finer one's size and adds it to the
finer level's lateral 1x1 convolution. Under autocast the upsampling runs in float32 (it is on
autocast's float32 list), so the upsampled map, the sum, and the cast back to float16 before the
3x3 convolution are passes over float32 maps the finest level's size; with the lateral's bias added
as a pass of its own, they took about 8 of a ResNet-50 tail's 64 ms of kernel time per batch of 32
(H200). Where a level is exactly twice the next one's size (always, for images padded to the FPN's
stride), its upsampled map is the coarser one seen through a broadcast view: the lateral convolution
runs without its bias, which is added to the coarser map at a quarter of the size, and the sum is
added in place, in the convolution's dtype.
"""

from collections import OrderedDict

from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812  (the torch idiom)
from torchvision.ops import FeaturePyramidNetwork


class TopDownFPN(nn.Module):
    """A FeaturePyramidNetwork whose top-down sums run as `top_down` on CUDA tensors (elsewhere as
    torchvision's operations). It holds the FPN's own modules, unchanged."""

    def __init__(self, fpn: FeaturePyramidNetwork) -> None:
        super().__init__()
        self.fpn = fpn
        self.plain = all(_lateral_conv(block) is not None for block in fpn.inner_blocks)

    def forward(self, x: OrderedDict[str, Tensor]) -> OrderedDict[str, Tensor]:
        if self.plain and next(iter(x.values())).is_cuda:
            return top_down(self.fpn, x)
        return self.fpn(x)


def top_down(fpn: FeaturePyramidNetwork, x: OrderedDict[str, Tensor]) -> OrderedDict[str, Tensor]:
    """FeaturePyramidNetwork.forward, with each exact 2x upsampling and sum as one in-place addition.
    Its inner blocks must be plain 1x1 convolutions (torchvision's, without norm or activation)."""
    names, maps = list(x.keys()), list(x.values())
    last = fpn.inner_blocks[-1](maps[-1])
    results = [fpn.layer_blocks[-1](last)]
    for idx in range(len(maps) - 2, -1, -1):
        conv = _lateral_conv(fpn.inner_blocks[idx])
        assert conv is not None, "the FPN's inner blocks must be 1x1 convolutions"
        last = _lateral_plus_top(conv, maps[idx], last)
        results.insert(0, fpn.layer_blocks[idx](last))
    if fpn.extra_blocks is not None:
        results, names = fpn.extra_blocks(results, maps, names)
    return OrderedDict(zip(names, results, strict=True))


def _lateral_plus_top(conv: nn.Conv2d, x: Tensor, top: Tensor) -> Tensor:
    """conv(x) + nearest upsampling of `top` to its size."""
    h, w = top.shape[-2:]
    if tuple(x.shape[-2:]) != (2 * h, 2 * w):
        return conv(x) + F.interpolate(top, size=x.shape[-2:], mode="nearest")
    lateral = F.conv2d(x, conv.weight)
    if conv.bias is not None:
        top = top + conv.bias.to(top.dtype)[:, None, None]
    # (N, C, 2h, 2w) as (N, C, h, 2, w, 2): each value of `top` added to its 2x2 block, in any layout.
    lateral.unflatten(3, (w, 2)).unflatten(2, (h, 2)).add_(top[:, :, :, None, :, None].to(lateral.dtype))
    return lateral


def _lateral_conv(block: nn.Module) -> nn.Conv2d | None:
    """The inner block's convolution, if the block is one plain 1x1 convolution of stride 1."""
    layers = list(block) if isinstance(block, nn.Sequential) else [block]
    conv = layers[0] if len(layers) == 1 else None
    plain = type(conv) is nn.Conv2d and conv.kernel_size == (1, 1) and conv.stride == (1, 1)
    return conv if plain and conv.padding == (0, 0) and conv.groups == 1 and conv.dilation == (1, 1) else None
