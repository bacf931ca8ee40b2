"""Uniform 8-bit quantization, bit-identical to torchdistill's `quantize_tensor(x, num_bits=8)`.

real = scale * (q - zero_point). The arithmetic below repeats torchdistill's step by step in
float32, so that a head without torch sends the very bytes the SC2 models were evaluated with.
That includes torchdistill's limits: the zero point is clamped to [0, 255] and truncated, so a
tensor whose range excludes 0 saturates (all-positive values decode to at most max - min).
"""

import math

import numpy as np

from sc2_split.codecs.payload import EncodedTensor, PayloadError, check_length, check_payload, latent_dtype

QMIN = np.float32(0.0)
QMAX = np.float32(255.0)


class Quant8Codec:
    """One byte per element, with the scale and zero point of the whole tensor."""

    name = "quant8"
    version = 1

    def encode(self, latent: np.ndarray) -> EncodedTensor:
        dtype = latent_dtype(latent)
        x = latent.astype(np.float32)
        low, high = x.min(), x.max()
        scale = (high - low) / (QMAX - QMIN)
        if not np.isfinite(scale):
            raise ValueError("cannot quantize a latent with NaN, infinite or float32-overflowing values")
        if scale == 0:
            # Constant tensor (or a range below float32's resolution): torchdistill would divide by zero.
            # Code it exactly instead: scale |c| and q one step off the zero point give back c (q = zero
            # point with scale 1 for c = 0).
            scale = np.abs(low) if low != 0 else np.float32(1.0)
            zero_point = int(low < 0)
            q = np.full(x.shape, int(low > 0), dtype=np.uint8)
        else:
            with np.errstate(over="ignore"):  # huge x / tiny scale saturates, as in torch
                initial_zero_point = QMIN - low / scale
                zero_point = int(np.clip(initial_zero_point, QMIN, QMAX))  # clamped, then truncated
                q = np.rint(np.clip(np.float32(zero_point) + x / scale, QMIN, QMAX)).astype(np.uint8)
        return EncodedTensor(
            codec=self.name,
            version=self.version,
            shape=tuple(int(n) for n in latent.shape),
            dtype=dtype,
            data=q.tobytes(),
            scale=float(scale),
            zero_point=zero_point,
        )

    def decode(self, enc: EncodedTensor, expected_shape: tuple[int, ...]) -> np.ndarray:
        check_payload(enc, self.name, self.version, expected_shape)
        check_length(len(enc.data), math.prod(expected_shape), "quant8 data")
        if not (math.isfinite(enc.scale) and 0 < enc.scale <= np.finfo(np.float32).max):
            raise PayloadError("corrupt", f"quant8 scale is {enc.scale}, expected a positive finite float32")
        if not 0 <= enc.zero_point <= 255:
            raise PayloadError("corrupt", f"quant8 zero point is {enc.zero_point}, expected 0 to 255")
        q = np.frombuffer(enc.data, dtype=np.uint8).astype(np.float32).reshape(expected_shape)
        with np.errstate(over="ignore"):  # only a forged scale overflows; it decodes to infinities
            return np.float32(enc.scale) * (q - np.float32(enc.zero_point))
