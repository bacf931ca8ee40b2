"""Model configurations in sc2bench's YAML format (`key`/`kwargs`, torchdistill's `!import_call` tags)."""

import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from torchdistill.common import yaml_util

from sc2_split.bundled import DEMO_DIR

# Where a full sc2bench training config keeps the model to deploy, most specific first.
_MODEL_ENTRIES = (("models", "student_model"), ("models", "model"), ("model",))


def bundled_config_path(name: str) -> Path:
    """Path of a config shipped with this package, by file stem (e.g. `sc2_resnet50_fp`)."""
    path = Path(str(resources.files("sc2_split.models") / "configs" / f"{name}.yaml"))
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise FileNotFoundError(f"no bundled model config named {name!r}; bundled: {', '.join(known)}")
    return path


def config_path(name_or_path: str) -> Path:
    """A YAML path as given, or the bundled config of that name."""
    if name_or_path.endswith((".yaml", ".yml")):
        return Path(name_or_path)
    return bundled_config_path(name_or_path)


def checkpoint_path(name_or_path: str) -> Path | None:
    """A checkpoint path as given, a bundled demo checkpoint by name (e.g. `demo_fp_beta0.64`), or
    None for an empty string (random weights)."""
    if not name_or_path:
        return None
    if name_or_path.endswith((".pt", ".pth")):
        return Path(name_or_path)
    path = DEMO_DIR / f"{name_or_path}.pt"
    if not path.is_file():
        known = sorted(p.stem for p in DEMO_DIR.glob("*.pt"))
        raise FileNotFoundError(f"no bundled checkpoint named {name_or_path!r}; bundled: {', '.join(known)}")
    return path


def load_model_config(path: str | Path) -> dict[str, Any]:
    """The detection model entry of a YAML file: a bare `model:` or an sc2bench training config."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model config not found: {path}")
    document = yaml_util.load_yaml_file(str(path))
    for entry in _MODEL_ENTRIES:
        node: Any = document
        for key in entry:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            return _resolve_start_checkpoint(_require_key_kwargs(node, path), path)
    raise ValueError(f"{path}: no model entry; expected one of {['.'.join(e) for e in _MODEL_ENTRIES]}")


def write_model_config(
    source: str | Path,
    dest: str | Path,
    kwargs: dict[str, Any],
    class_names: list[str] | None = None,
    note: str = "",
) -> Path:
    """A copy of a config with some of its model's kwargs (and class_names) replaced, its other
    entries (torchdistill's `!import_call` tags too) as written: what training hands to the tail and
    the export tool. A `start_ckpt_file_path` is written relative to dest's folder."""
    source, dest = Path(source), Path(dest)
    root = yaml.compose(source.read_text(), Loader=yaml.SafeLoader)
    entry = next((e for e in (_node(root, keys) for keys in _MODEL_ENTRIES) if e is not None), None)
    if entry is None or _node(entry, ("kwargs",)) is None:
        raise ValueError(f"{source}: no model entry with kwargs")
    represent = yaml.representer.SafeRepresenter().represent_data
    start = kwargs.get("start_ckpt_file_path")
    if start is not None:
        kwargs = {
            **kwargs,
            "start_ckpt_file_path": os.path.relpath(Path(start).resolve(), dest.parent.resolve()),
        }
    for key, value in kwargs.items():
        _set(_node(entry, ("kwargs",)), key, represent(value))
    if class_names is not None:
        _set(root, "class_names", represent(list(class_names)))
    dest.parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {line}\n" for line in note.splitlines())
    dest.write_text(header + yaml.serialize(root))
    return dest


def load_class_names(path: str | Path) -> tuple[str, ...]:
    """Class names by label index (0 is the background), from the config's `class_names` entry.

    `class_names: coco` stands for torchvision's 91 COCO categories, as the published models use.
    """
    names = yaml_util.load_yaml_file(str(path)).get("class_names")
    if names == "coco":
        from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

        return tuple(FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{path}: `class_names` must be `coco` or a list of names, background first")
    return tuple(names)


def _node(node: yaml.Node, keys: tuple[str, ...]) -> yaml.MappingNode | None:
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value if k.value == key), None)
    return node if isinstance(node, yaml.MappingNode) else None


def _set(mapping: yaml.MappingNode, key: str, value: yaml.Node) -> None:
    for i, (k, _) in enumerate(mapping.value):
        if k.value == key:
            mapping.value[i] = (k, value)
            return
    mapping.value.append((yaml.ScalarNode("tag:yaml.org,2002:str", key), value))


def _resolve_start_checkpoint(entry: dict[str, Any], path: Path) -> dict[str, Any]:
    """A relative `start_ckpt_file_path` (weights sc2bench loads before the model's own checkpoint)
    is taken from the config's folder, so that bundled configs find bundled checkpoints anywhere."""
    start = entry["kwargs"].get("start_ckpt_file_path")
    if start is not None and not Path(start).is_absolute():
        entry["kwargs"]["start_ckpt_file_path"] = str((path.parent / start).resolve())
    return entry


def _require_key_kwargs(entry: dict[str, Any], path: Path) -> dict[str, Any]:
    if "name" in entry or "params" in entry:
        raise ValueError(
            f"{path}: this config spells entries `name`/`params` (older sc2bench); "
            "sc2bench 0.1.1 takes `key`/`kwargs`: rename them"
        )
    if "key" not in entry or not isinstance(entry.get("kwargs"), dict):
        raise ValueError(f"{path}: the model entry needs `key` and a `kwargs` mapping")
    return entry
