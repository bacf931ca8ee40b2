"""The decoder's GDN layers with fixed parameters (models/gdn.py) compute compressai's: bit for bit on
CPU tensors, within float16's rounding on CUDA, where the normaliser is one cuDNN kernel."""

import pytest
import torch
from compressai.layers import GDN, GDN1
from sc2_split.models.gdn import FixedGDN, fix_gdns
from torch import nn

KINDS = [(GDN, False), (GDN, True), (GDN1, False), (GDN1, True)]


def trained_like(kind: type, inverse: bool, generator: torch.Generator) -> GDN:
    """A GDN layer whose parameters are not their initial ones (gamma starts diagonal)."""
    gdn = kind(12, inverse=inverse).eval()
    with torch.no_grad():
        gdn.beta.add_(torch.rand(12, generator=generator))
        gdn.gamma.add_(0.1 * torch.rand((12, 12), generator=generator))
    return gdn


@pytest.mark.parametrize(("kind", "inverse"), KINDS)
def test_fixed_gdn_computes_compressais_on_cpu(kind: type, inverse: bool) -> None:
    generator = torch.Generator().manual_seed(4)
    gdn = trained_like(kind, inverse, generator)
    x = torch.randn((2, 12, 9, 7), generator=generator)
    with torch.inference_mode():
        assert torch.equal(FixedGDN(gdn)(x), gdn(x))


def test_fix_gdns_replaces_each_layer_of_a_decoder() -> None:
    decoder = nn.Sequential(nn.Conv2d(4, 12, 1), GDN1(12, inverse=True), nn.Sequential(GDN(12, inverse=True)))
    assert fix_gdns(decoder) == 2
    assert isinstance(decoder[1], FixedGDN) and isinstance(decoder[2][0], FixedGDN)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("kind", "inverse"), KINDS)
def test_on_cuda_in_float16_within_its_rounding(kind: type, inverse: bool) -> None:
    gdn = trained_like(kind, inverse, torch.Generator().manual_seed(5)).cuda()
    # float16, as the decoder's convolutions give it under autocast
    x = torch.randn((2, 12, 9, 7), device="cuda").half().to(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cuda", torch.float16):
        want, got = gdn(x), FixedGDN(gdn).cuda()(x)
    # float16 for the decoder's inverse layers; the forward ones' rsqrt and reciprocal in float32
    assert got.dtype == want.dtype == (torch.float16 if inverse else torch.float32)
    torch.testing.assert_close(got.float(), want.float(), rtol=1e-2, atol=1e-2 * float(want.abs().max()))
