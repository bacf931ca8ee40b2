"""Frames as compressed image files: what full offloading sends, and what the bottleneck is
measured against. One encoder for the demo, the benchmarks and the evaluation."""

import io

import numpy as np
from PIL import Image


def encode_image(rgb: np.ndarray, fmt: str = "JPEG", quality: int | None = None) -> bytes:
    """uint8 RGB (H, W, 3) as a JPEG (at `quality`) or PNG file."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **({"quality": quality} if quality else {}))
    return buf.getvalue()
