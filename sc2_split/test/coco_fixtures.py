"""A tiny COCO-format folder for the training tests: procedural frames shrunk to 160x120 (so that
a detector at min_size 128 trains in seconds on 2 cores), with user-chosen category names."""

import json
from pathlib import Path

import numpy as np
from PIL import Image
from sc2_split.data.synthetic import CLASS_NAMES, frame

WIDTH, HEIGHT = 160, 120
_SCALE = 4  # from the 640x480 frames
# Category ids as a robot's own data set might have them: not 1..N, so the teacher has 9 classes.
CATEGORY_IDS = (2, 3, 5, 6, 7, 8)


def write_tiny_coco(
    folder: Path, name: str, count: int, start: int = 0, category_ids: tuple[int, ...] = CATEGORY_IDS
) -> Path:
    """count images (train split frames start..) and folder/<name>.json; returns the JSON's path."""
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(start, start + count):
        image, target = frame("train", index)
        file_name = f"{name}_{index:04d}.png"
        Image.fromarray(image).resize((WIDTH, HEIGHT), Image.Resampling.BOX).save(folder / file_name)
        images.append({"id": index + 1, "file_name": file_name, "width": WIDTH, "height": HEIGHT})
        for box, label in zip(target["boxes"] / _SCALE, target["labels"], strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": category_ids[int(label) - 1],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i, "name": n} for i, n in zip(category_ids, CLASS_NAMES, strict=True)]
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def class_names() -> list[str]:
    """What a config trained on this data names its labels: background first, N/A for gaps."""
    names = ["__background__"] + ["N/A"] * max(CATEGORY_IDS)
    for i, n in zip(CATEGORY_IDS, CLASS_NAMES, strict=True):
        names[i] = n
    return names


def same_size_frame() -> np.ndarray:
    """A frame of the tiny folder's size, for heads exported at it."""
    image, _ = frame("test", 0)
    return np.asarray(Image.fromarray(image).resize((WIDTH, HEIGHT), Image.Resampling.BOX))
