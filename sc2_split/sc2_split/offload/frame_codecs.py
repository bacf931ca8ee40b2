"""Frames sent one by one as compressed images: each decodes alone, so a lost one costs only itself."""

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from sc2_split.image_files import encode_image

FORMATS = ("JPEG", "WEBP")


@dataclass(frozen=True)
class ImageCodec:
    format: str  # one of FORMATS
    quality: int  # 1..100, as Pillow takes it

    def __post_init__(self) -> None:
        if self.format not in FORMATS or not 1 <= self.quality <= 100:
            raise ValueError(f"image codec {self.format} q{self.quality}: formats {FORMATS}, quality 1..100")

    @property
    def name(self) -> str:
        return f"{self.format.lower()} q{self.quality}"

    def encode(self, rgb: np.ndarray) -> bytes:
        return encode_image(rgb, self.format, self.quality)

    def decode(self, data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != self.format:
                raise ValueError(f"expected a {self.format} file, got {image.format}")
            return np.asarray(image.convert("RGB"))
