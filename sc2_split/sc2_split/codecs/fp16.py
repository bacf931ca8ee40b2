"""Raw little-endian float16: half the bytes of float32, no tables, no model-specific state."""

import math

import numpy as np

from sc2_split.codecs.payload import EncodedTensor, check_length, check_payload, latent_dtype


class Fp16Codec:
    """Each latent element as an IEEE half; values beyond float16's range become infinities."""

    name = "fp16"
    version = 1

    def encode(self, latent: np.ndarray) -> EncodedTensor:
        with np.errstate(over="ignore"):
            data = np.ascontiguousarray(latent, dtype="<f2").tobytes()
        return EncodedTensor(
            codec=self.name,
            version=self.version,
            shape=tuple(int(n) for n in latent.shape),
            dtype=latent_dtype(latent),
            data=data,
        )

    def decode(self, enc: EncodedTensor, expected_shape: tuple[int, ...]) -> np.ndarray:
        check_payload(enc, self.name, self.version, expected_shape)
        check_length(len(enc.data), 2 * math.prod(expected_shape), "fp16 data")
        return np.frombuffer(enc.data, dtype="<f2").astype(np.float32).reshape(expected_shape)
