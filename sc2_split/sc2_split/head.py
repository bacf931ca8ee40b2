"""The robot's half of the detector: frame -> latent -> coded bottleneck. No torch here."""

import time
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from sc2_split.backends import HeadBackend
from sc2_split.codecs import make_codec
from sc2_split.codecs.channel_pool import ChannelPool
from sc2_split.codecs.payload import EncodedTensor
from sc2_split.geometry import ImageGeometry
from sc2_split.head_metadata import HeadMetadata


@dataclass(frozen=True)
class HeadResult:
    encoded: EncodedTensor
    geometry: ImageGeometry
    preprocess_ms: float
    encode_ms: float
    codec_ms: float


class HeadPipeline:
    """The entropy codec sends version 2 (rANS lanes, coded in this process on all cores by numba).
    `encode_workers` > 0 sends version 1 instead, each frame's channels coded on that many processes
    (a ChannelPool); the other codecs ignore it. Close the pipeline (or use it as a context manager)
    to stop them."""

    def __init__(
        self, metadata: HeadMetadata, backend: HeadBackend, codec: str, encode_workers: int = 0
    ) -> None:
        if codec not in metadata.codecs:
            raise ValueError(f"model {metadata.model_id} supports codecs {metadata.codecs}, not {codec!r}")
        if encode_workers < 0:
            raise ValueError(f"encode_workers must be 0 or more, not {encode_workers}")
        self.metadata = metadata
        self.backend = backend
        tables = metadata.entropy_tables
        self.encode_pool = (
            ChannelPool(tables, encode_workers)
            if codec == "entropy" and tables is not None and encode_workers
            else None
        )
        self.codec = make_codec(codec, tables, self.encode_pool)

    def close(self) -> None:
        """Stops the encoding processes, if any."""
        if self.encode_pool is not None:
            self.encode_pool.close()

    def __enter__(self) -> "HeadPipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, image: np.ndarray) -> HeadResult:
        """`image` is uint8 RGB (H, W, 3) of any size; boxes will come back in its pixels."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {image.dtype} {image.shape}")
        m = self.metadata
        t0 = time.perf_counter()
        height, width = image.shape[:2]
        if (height, width) != (m.input_height, m.input_width):
            # The exported graph has a fixed size; the tail maps boxes back to this frame's pixels.
            image = np.asarray(Image.fromarray(image).resize((m.input_width, m.input_height), Image.BILINEAR))
        t1 = time.perf_counter()
        latent = self.backend(image)
        t2 = time.perf_counter()
        encoded = self.codec.encode(latent)
        t3 = time.perf_counter()
        geometry = replace(m.geometry, image_height=height, image_width=width)
        return HeadResult(encoded, geometry, 1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * (t3 - t2))
