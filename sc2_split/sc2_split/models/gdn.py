"""The decoder's GDN layers with their parameters fixed and their bias in the convolution, on a CUDA
device.

compressai's GDN recomputes its non-negative parameters on every call (a few small kernels each) and
computes its normaliser as a 1x1 convolution over |x| (GDN1) or x² (GDN) plus a bias (beta), which
torch adds as a pass of its own over a map the size of the decoder's widest activation (512 channels
at a quarter of the input's resolution for the SC2 ResNet-50). The normaliser is positive (beta and
gamma are, and so is its input), so cuDNN's convolution + bias + ReLU kernel computes it exactly, the
ReLU doing nothing. Elsewhere the layer runs compressai's operations with its fixed parameters.
"""

import torch
from compressai.layers import GDN, GDN1
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812  (the torch idiom)


class FixedGDN(nn.Module):
    """A GDN or GDN1 layer in eval: beta and gamma computed once, the normaliser one cuDNN kernel."""

    def __init__(self, gdn: GDN) -> None:
        super().__init__()
        with torch.no_grad():
            channels = gdn.beta.shape[0]
            self.register_buffer("beta", gdn.beta_reparam(gdn.beta).detach().clone())
            gamma = gdn.gamma_reparam(gdn.gamma).detach().reshape(channels, channels, 1, 1).clone()
            self.register_buffer("gamma", gamma)
        self.inverse, self.absolute = gdn.inverse, isinstance(gdn, GDN1)

    def forward(self, x: Tensor) -> Tensor:
        if x.is_cuda:
            dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else x.dtype
            x = x.to(dtype)
            y = x.abs() if self.absolute else x * x
            norm = torch.ops.aten.cudnn_convolution_relu(
                y, self.gamma.to(dtype), self.beta.to(dtype), (1, 1), (0, 0), (1, 1), 1
            )
        else:
            norm = F.conv2d(x.abs() if self.absolute else x**2, self.gamma, self.beta)
        if self.absolute:
            return x * (norm if self.inverse else 1.0 / norm)
        return x * (norm.sqrt() if self.inverse else norm.rsqrt())


def fix_gdns(layers: nn.Module) -> int:
    """Replaces each GDN layer among `layers`' descendants by a FixedGDN, in place; returns how many."""
    fixed = 0
    for name, child in list(layers.named_children()):
        if isinstance(child, GDN):
            setattr(layers, name, FixedGDN(child))
            fixed += 1
        else:
            fixed += fix_gdns(child)
    return fixed
