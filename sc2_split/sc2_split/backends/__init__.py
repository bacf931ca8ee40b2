"""Inference backends that run the exported head: TensorRT (Jetson), ONNX Runtime, or torch.

Each takes one uint8 RGB frame of the exported size (H, W, 3) and returns the float32 latent.
Backends import their runtime only when chosen, so the head never imports torch unless asked to.
"""

import importlib.util
from pathlib import Path
from typing import Protocol

import numpy as np

from sc2_split.head_metadata import HeadMetadata

BACKENDS = ("tensorrt", "onnxruntime", "torch")


class HeadBackend(Protocol):
    name: str

    def __call__(self, image: np.ndarray) -> np.ndarray: ...


def available_backends() -> list[str]:
    """Backends whose runtime is installed, fastest first."""
    runtimes = {"tensorrt": "tensorrt", "onnxruntime": "onnxruntime", "torch": "torch"}
    return [b for b in BACKENDS if importlib.util.find_spec(runtimes[b]) is not None]


def make_backend(
    kind: str,
    metadata_path: str | Path,
    metadata: HeadMetadata,
    model_file_path: str | Path = "",
    engine_file_path: str | Path = "",
    device: str = "cpu",
) -> HeadBackend:
    """The backend `kind` ('auto' picks TensorRT where an engine is given, else ONNX Runtime, else torch).

    An empty model or engine path means the file the export tool writes beside the metadata
    (head.onnx, head.engine), where it exists.
    """
    model_file_path = model_file_path or _beside(metadata_path, "head.onnx")
    engine_file_path = engine_file_path or _beside(metadata_path, "head.engine")
    if kind == "auto":
        kind = _auto(engine_file_path, model_file_path)
    if kind == "tensorrt":
        from sc2_split.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(_require(engine_file_path, "engine_file_path"), metadata)
    if kind == "onnxruntime":
        from sc2_split.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(_require(model_file_path, "model_file_path"), metadata, device)
    if kind == "torch":
        from sc2_split.backends.torch import TorchBackend

        return TorchBackend(metadata_path, metadata, device)
    raise ValueError(f"unknown backend {kind!r}; choose one of auto, {', '.join(BACKENDS)}")


def _auto(engine_file_path: str | Path, model_file_path: str | Path) -> str:
    installed = available_backends()
    if engine_file_path and "tensorrt" in installed:
        return "tensorrt"
    if model_file_path and "onnxruntime" in installed:
        return "onnxruntime"
    if "torch" in installed:
        return "torch"
    raise RuntimeError(
        f"no usable head backend: installed runtimes {installed}, engine "
        f"{engine_file_path or 'not given'}, ONNX model {model_file_path or 'not given'}"
    )


def _beside(metadata_path: str | Path, name: str) -> str:
    path = Path(metadata_path).parent / name
    return str(path) if path.is_file() else ""


def _require(path: str | Path, name: str) -> Path:
    if not path:
        raise ValueError(f"{name} must be set for this backend")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name} not found: {path}")
    return path


def check_frame(image: np.ndarray, metadata: HeadMetadata) -> np.ndarray:
    """The frame as the exported graph wants it: contiguous uint8 (H, W, 3) of the exported size."""
    expected = (metadata.input_height, metadata.input_width, 3)
    if image.shape != expected or image.dtype != np.uint8:
        raise ValueError(f"head input must be uint8 {expected}, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)
