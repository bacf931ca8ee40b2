"""The types that cross process boundaries between the head's and the tail's sides: a coded frame,
and the detections of one. Torch-free, so that a robot, a bag tool or a served tail's client can use
them without loading the detector."""

from dataclasses import dataclass

import numpy as np

from sc2_split.codecs.payload import EncodedTensor
from sc2_split.geometry import ImageGeometry


@dataclass(frozen=True)
class CodedFrame:
    """One frame as the head sends it: the coded latent, the frame's geometry, and the id of the model
    that coded it (which the tail checks against its own)."""

    encoded: EncodedTensor
    geometry: ImageGeometry
    model_id: str


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (N, 4) float32, x1 y1 x2 y2 in source-frame pixels
    scores: np.ndarray  # (N,) float32
    labels: np.ndarray  # (N,) int64, indexes into the model's class names
    decode_ms: float
    tail_ms: float
