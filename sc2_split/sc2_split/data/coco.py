"""A COCO-format detection dataset (an instances JSON and an image folder), any classes, for training
and evaluation: the user's own robot data, COCO itself, or procedural frames written by
`synthetic.write_split`.

Items are what the training engine and `evaluation.coco_map` take: a uint8 (3, H, W) image and a
target with `boxes` (N, 4) float32 x1, y1, x2, y2, `labels` (N,) int64 category ids (as torchvision's
COCO models use them: the label is the category id, 0 the background), `area`, `iscrowd` and
`image_id`. Crowd regions are left out, as torchvision's detection references train without them.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image, read_file

from sc2_split.data.augmentation import Augmentation

Target = dict[str, Any]


@dataclass(frozen=True)
class _Image:
    image_id: int
    path: Path
    boxes: np.ndarray
    labels: np.ndarray
    area: np.ndarray


class CocoDetection(Dataset):
    """The images of one instances file, read from `images` (default: the JSON's folder)."""

    def __init__(
        self,
        annotations: str | Path,
        images: str | Path | None = None,
        augmentation: Augmentation | None = None,
        skip_empty: bool = False,
    ) -> None:
        annotations = Path(annotations)
        if not annotations.is_file():
            raise FileNotFoundError(f"COCO annotations not found: {annotations}")
        try:
            document = json.loads(annotations.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{annotations}: not a COCO instances JSON: {exc}") from exc
        folder = Path(images) if images is not None else annotations.parent
        self.categories, self.items = _parse(document, folder, annotations)
        if skip_empty:  # training, as the references do: an image without boxes teaches little
            self.items = [item for item in self.items if len(item.labels)]
        if not self.items:
            raise ValueError(f"{annotations}: no images to use")
        self.augmentation = augmentation

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, Target]:
        """By index, or by (epoch, index) in training: the epoch seeds the augmentation."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        item = self.items[index]
        image = decode_image(read_file(str(item.path)), ImageReadMode.RGB)
        target = {
            "image_id": item.image_id,
            "boxes": item.boxes,
            "labels": item.labels,
            "area": item.area,
            "iscrowd": np.zeros(len(item.labels), np.int64),
        }
        if self.augmentation is not None:
            image, target = self.augmentation(image, target, key=(epoch, index))
        return image, target

    def class_names(self) -> list[str]:
        """Names by label, background first; ids the file skips are named N/A (as torchvision's)."""
        names = ["__background__"] + ["N/A"] * max(c["id"] for c in self.categories)
        for category in self.categories:
            names[category["id"]] = category["name"]
        return names


def _parse(document: Any, folder: Path, source: Path) -> tuple[list[dict[str, Any]], list[_Image]]:
    """Checks every field the engine uses, so a malformed file fails here with its place named."""
    if not isinstance(document, dict) or not all(
        k in document for k in ("images", "annotations", "categories")
    ):
        raise ValueError(f"{source}: a COCO instances JSON needs `images`, `annotations` and `categories`")
    try:
        categories = [{"id": int(c["id"]), "name": str(c["name"])} for c in document["categories"]]
        if not categories or min(c["id"] for c in categories) < 1:
            raise ValueError("category ids must be >= 1 (0 is the background)")
        known = {c["id"] for c in categories}
        boxes: dict[int, list[list[float]]] = {}
        labels: dict[int, list[int]] = {}
        areas: dict[int, list[float]] = {}
        for a in document["annotations"]:
            if a.get("iscrowd", 0):
                continue
            if int(a["category_id"]) not in known:
                raise ValueError(f"annotation {a.get('id')}: unknown category_id {a['category_id']}")
            x, y, w, h = (float(v) for v in a["bbox"])
            if w <= 0 or h <= 0:  # degenerate boxes break the box coder; the references drop them
                continue
            image_id = int(a["image_id"])
            boxes.setdefault(image_id, []).append([x, y, x + w, y + h])
            labels.setdefault(image_id, []).append(int(a["category_id"]))
            areas.setdefault(image_id, []).append(float(a.get("area", w * h)))
        items = []
        for image in document["images"]:
            image_id = int(image["id"])
            path = folder / str(image["file_name"])
            if not path.is_file():
                raise FileNotFoundError(f"{source}: image {image_id} not found: {path}")
            items.append(
                _Image(
                    image_id,
                    path,
                    np.asarray(boxes.get(image_id, []), np.float32).reshape(-1, 4),
                    np.asarray(labels.get(image_id, []), np.int64),
                    np.asarray(areas.get(image_id, []), np.float32),
                )
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source}: malformed COCO instances JSON: {exc!r}") from exc
    return categories, items
