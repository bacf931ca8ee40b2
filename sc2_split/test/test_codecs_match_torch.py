"""The numpy codecs give exactly what their torch references give: torchdistill's 8-bit quantization
and torch's rounding. Apart from test_codecs.py, which runs without torch (the robot side's tests)."""

import math

import numpy as np
import pytest
import torch
from test_codecs import CODEC, SHAPE, TABLES
from torchdistill.common.tensor_util import dequantize_tensor, quantize_tensor


@pytest.mark.parametrize("seed", range(12))
def test_quant8_is_identical_to_torchdistill(seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(SHAPE) * 10 ** rng.uniform(-4, 3) + rng.uniform(-20, 20)).astype(np.float32)
    reference = quantize_tensor(torch.from_numpy(x), num_bits=8)
    enc = CODEC["quant8"].encode(x)
    assert enc.data == reference.tensor.numpy().tobytes()
    assert enc.zero_point == reference.zero_point
    assert np.float32(enc.scale) == reference.scale.item()
    decoded = CODEC["quant8"].decode(enc, SHAPE)
    assert decoded.tobytes() == dequantize_tensor(reference).numpy().tobytes()


def test_quant8_saturates_like_torchdistill_when_the_range_excludes_zero():
    x = np.linspace(10.0, 20.0, num=math.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    reference = dequantize_tensor(quantize_tensor(torch.from_numpy(x), num_bits=8)).numpy()
    decoded = CODEC["quant8"].decode(CODEC["quant8"].encode(x), SHAPE)
    assert decoded.tobytes() == reference.tobytes()
    assert np.all(decoded == 10.0)  # the zero point is clamped to q = 0, so q saturates at 255 steps


def test_entropy_rounds_half_to_even_like_torch():
    x = np.arange(-6, 6, 0.5, dtype=np.float32).reshape(1, 1, 1, -1) + TABLES.medians.reshape(1, -1, 1, 1)
    medians = torch.tensor(TABLES.medians).reshape(1, -1, 1, 1)
    expected = torch.round(torch.from_numpy(x) - medians).int().numpy()
    codec = CODEC["entropy"]
    assert np.array_equal(codec.decode_symbols(codec.encode(x), x.shape), expected)
