"""The file next to an exported head (ONNX model or TensorRT engine): all the head node needs besides it.

Plain JSON, written by the export tool and read on the robot without torch: which model the head
belongs to, the input it takes, the sizes it resizes to, the latent it emits, and the entropy
coder's tables.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from sc2_split.codecs.entropy import EntropyTables
from sc2_split.geometry import ImageGeometry

FORMAT_VERSION = 1


@dataclass(frozen=True)
class HeadMetadata:
    model_id: str
    # The fixed frame size the exported head takes (uint8 RGB, height x width x 3).
    input_height: int
    input_width: int
    geometry: ImageGeometry
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    latent_shape: tuple[int, ...]
    codecs: tuple[str, ...]
    class_names: tuple[str, ...]
    entropy_tables: EntropyTables | None = None
    # Where the torch backend finds the model, relative to the metadata file.
    model_config: str = ""
    checkpoint: str = ""
    # Tensor names of the exported graph.
    input_name: str = "image"
    output_name: str = "latent"

    def save(self, path: str | Path) -> None:
        record = asdict(self)
        record["format"] = FORMAT_VERSION
        record["entropy_tables"] = None if self.entropy_tables is None else self.entropy_tables.to_dict()
        Path(path).write_text(json.dumps(record, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "HeadMetadata":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"head metadata not found: {path} (written by `python -m sc2_split.export`)"
            )
        try:
            record = json.loads(path.read_text())
            if record.pop("format", None) != FORMAT_VERSION:
                raise ValueError(f"unsupported metadata format; this version reads format {FORMAT_VERSION}")
            tables = record.pop("entropy_tables")
            return cls(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k != "geometry"},
                geometry=ImageGeometry(**record["geometry"]),
                entropy_tables=None if tables is None else EntropyTables.from_dict(tables),
            )
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not valid head metadata: {exc}") from exc
