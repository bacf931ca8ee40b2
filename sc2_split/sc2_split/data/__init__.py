"""Data the demo models are trained and checked on: the published COCO checkpoints cannot be downloaded,
so the project trains its own small detector on procedural frames (`synthetic`) and ships a few of
them (`samples/`) for the demo.
"""

from pathlib import Path

import numpy as np
from PIL import Image

# The bundled sample frames (PNG) and their COCO annotations.
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


def sample_frames(height: int, width: int, count: int) -> list[np.ndarray]:
    """The bundled sample frames (resized to the size asked for), else deterministic synthetic ones."""
    paths = sorted(SAMPLES_DIR.glob("*.png"))[:count]
    if paths:
        return [np.asarray(Image.open(p).convert("RGB").resize((width, height))) for p in paths]
    rng = np.random.default_rng(0)
    blocks = [rng.integers(0, 256, (height // 16, width // 16, 3)) for _ in range(count)]
    return [np.kron(b, np.ones((16, 16, 1))).astype(np.uint8) for b in blocks]
