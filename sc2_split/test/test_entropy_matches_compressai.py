"""The entropy codec decodes exactly what compressai's EntropyBottleneck decodes, escapes included."""

import numpy as np
import pytest
import torch
from codec_fixtures import reference_symbols
from compressai.entropy_models import EntropyBottleneck
from sc2_split.codecs import make_codec
from sc2_split.models.entropy_tables import tables_from_entropy_bottleneck

CHANNELS = 24
SHAPE = (1, CHANNELS, 40, 56)


@pytest.fixture(scope="module")
def bottleneck() -> EntropyBottleneck:
    """A bottleneck with random density parameters, so that tables, medians and offsets differ per channel."""
    torch.manual_seed(0)
    eb = EntropyBottleneck(CHANNELS)
    with torch.no_grad():
        for parameter in (*eb.matrices, *eb.biases, *eb.factors):
            parameter.add_(torch.randn_like(parameter) * 0.5)
    eb.update(force=True, update_quantiles=True)
    return eb.eval()


@pytest.fixture(scope="module")
def x(bottleneck: EntropyBottleneck) -> torch.Tensor:
    """Values around each channel's median, and some far outside its table (escaped)."""
    generator = torch.Generator().manual_seed(1)
    low, median, high = bottleneck.quantiles.detach()[:, 0, :].T.reshape(3, 1, -1, 1, 1)
    x = median + (high - low) / 16 * torch.randn(SHAPE, generator=generator)
    far = torch.rand(SHAPE, generator=generator) < 0.002
    sign = torch.where(torch.rand(SHAPE, generator=generator) < 0.5, -1.0, 1.0)
    reach = torch.tensor([1.0, 1e2, 1e5])[torch.randint(0, 3, SHAPE, generator=generator)]
    beyond = torch.where(sign > 0, high, low) + sign * reach
    return torch.where(far, beyond, x)


@pytest.mark.parametrize("version", [1, 2])
def test_entropy_decodes_exactly_what_compressai_decodes(bottleneck, x, version):
    codec = make_codec("entropy", tables_from_entropy_bottleneck(bottleneck), entropy_version=version)
    with torch.no_grad():
        strings = bottleneck.compress(x)
        expected = bottleneck.decompress(strings, x.shape[2:])
        expected_symbols = bottleneck.quantize(x, "symbols", bottleneck._get_medians().reshape(1, -1, 1, 1))

    enc = codec.encode(x.numpy())
    symbols = codec.decode_symbols(enc, SHAPE)
    decoded = codec.decode(enc, SHAPE)

    tables = codec.tables
    indexes = expected_symbols.numpy()[0] - tables.offset.reshape(-1, 1, 1)
    assert np.any((indexes < 0) | (indexes >= (tables.cdf_length - 2).reshape(-1, 1, 1)))  # some escaped
    assert np.array_equal(reference_symbols(x.numpy(), tables), expected_symbols.numpy())
    assert np.array_equal(symbols, expected_symbols.numpy())
    assert decoded.tobytes() == expected.numpy().tobytes()

    ours, theirs = len(enc.data), len(strings[0])
    print(f"entropy version {version} payload: {ours} bytes; compressai's rANS: {theirs} bytes")
    assert theirs / 2 < ours < theirs * 2


def test_exporting_tables_needs_an_updated_bottleneck():
    with pytest.raises(ValueError, match="update"):
        tables_from_entropy_bottleneck(EntropyBottleneck(4))
