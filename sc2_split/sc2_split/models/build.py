"""Building SC2 detectors through sc2bench's registry and loading their checkpoints."""

import hashlib
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import torch
from compressai.entropy_models import EntropyBottleneck
from compressai.models.utils import update_registered_buffers
from sc2bench.models.detection.registry import load_detection_model
from torch import nn

from sc2_split.models import layers  # noqa: F401  (registers the layers our configs name)

# Entropy coder tables whose size depends on the trained weights: resized from the checkpoint.
_TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")


def build_detector(model_config: dict[str, Any], checkpoint: str | Path | None = None) -> nn.Module:
    """An sc2bench detector in eval mode, with its entropy coder tables built (model.update()).

    `checkpoint` is a torchdistill/sc2bench checkpoint (a dict whose `model` entry is the state
    dict) or a bare state dict. It may leave out what the config's start checkpoint provides.
    Nothing is downloaded: configs must not ask for pretrained weights.
    """
    model = create_detector(model_config)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, provided=start_checkpoint_keys(model_config))
    model.eval()
    if _entropy_bottlenecks(model):
        model.update()
    return model


def create_detector(model_config: dict[str, Any]) -> nn.Module:
    """The detector as training starts from it: fresh weights, or those of its start checkpoint
    (`start_ckpt_file_path`, e.g. a student's tail taken from its teacher); no entropy tables yet."""
    _refuse_downloads(model_config)
    start = model_config["kwargs"].get("start_ckpt_file_path")
    if start is not None and not Path(start).is_file():
        # sc2bench would only log this and go on with random weights.
        raise FileNotFoundError(f"start checkpoint not found: {start}")
    return load_detection_model(model_config, torch.device("cpu"), strict=True)


def load_checkpoint(model: nn.Module, path: str | Path, provided: Collection[str] = ()) -> None:
    """Loads weights strictly; a missing file, a foreign format or a mismatched model is an error.

    Keys in `provided` (already loaded from a start checkpoint) may be absent from this checkpoint.
    """
    state_dict = _read_state_dict(path)
    for name, eb in _entropy_bottlenecks(model).items():
        if f"{name}._quantized_cdf" in state_dict:
            update_registered_buffers(eb, name, list(_TABLE_BUFFERS), state_dict, policy="resize")
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    missing = [key for key in missing if key not in provided]
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit this model config: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"
        )


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    provided: Collection[str] = (),
    fp16: Callable[[str], bool] = lambda key: False,
    **extra: Any,
) -> None:
    """Writes the torchdistill/sc2bench checkpoint layout: {'model': state_dict, ...extra}.

    Keys in `provided` (weights kept as the start checkpoint gave them) are left out. Float tensors
    whose key `fp16` accepts are stored in half precision, for the repository's size budget;
    load_state_dict casts them back to the model's float32.
    """
    state_dict = {
        key: value.half() if value.is_floating_point() and fp16(key) else value
        for key, value in model.state_dict().items()
        if key not in provided
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state_dict, **extra}, path)


def start_checkpoint_keys(model_config: dict[str, Any]) -> frozenset[str]:
    """The weights the config's start checkpoint gives the model, which its own checkpoint may omit."""
    start = model_config["kwargs"].get("start_ckpt_file_path")
    return frozenset() if start is None else frozenset(_read_state_dict(start))


def model_id(name: str, model: nn.Module) -> str:
    """`name@digest` of the weights: a head and a tail work together only if their ids agree."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"{name}@{digest.hexdigest()[:12]}"


def _read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state_dict = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(
            f"{path}: not a checkpoint (expected a state dict or a dict with a 'model' state dict)"
        )
    return state_dict


def _entropy_bottlenecks(model: nn.Module) -> dict[str, EntropyBottleneck]:
    return {name: m for name, m in model.named_modules() if isinstance(m, EntropyBottleneck)}


def _refuse_downloads(model_config: dict[str, Any]) -> None:
    kwargs = model_config["kwargs"]
    backbone_kwargs = kwargs.get("backbone_config", {}).get("kwargs", {})
    for where, entry in (("model", kwargs), ("backbone", backbone_kwargs)):
        if entry.get("pretrained", False):
            raise ValueError(
                f"the {where} config asks for pretrained weights (pretrained: true), which would be "
                "downloaded; set pretrained: false and pass a checkpoint instead"
            )
