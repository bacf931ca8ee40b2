"""Data the demo models are trained and checked on: the published COCO checkpoints cannot be downloaded,
so the project trains its own small detector on procedural frames (`synthetic`) and ships a few of
them (`samples/`) for the demo.
"""

from pathlib import Path

# The bundled sample frames (PNG) and their COCO annotations.
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
