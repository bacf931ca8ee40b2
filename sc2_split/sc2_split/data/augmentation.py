"""Training augmentation as torchvision's detection references do it (`references/detection/presets.py`,
transforms v2): `hflip` (their default), `ssd` (photometric distortion, zoom out, IoU crop, flip), or
`none`. Each sample's random draws are seeded by (seed, epoch, index), so that a sample is augmented
the same whichever process or DataLoader worker loads it: one process and several under DDP see the
same batches.
"""

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

AUGMENTATIONS = ("none", "hflip", "ssd")
_MEAN_FILL = (123, 117, 104)  # ImageNet mean in uint8, the references' zoom-out fill


class Augmentation:
    """A preset by name; called with a uint8 (3, H, W) image, its target and a (epoch, index) key."""

    def __init__(self, name: str, seed: int = 0) -> None:
        if name not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(AUGMENTATIONS)}")
        self.name, self.seed = name, seed
        if name == "hflip":
            steps: list[Any] = [v2.RandomHorizontalFlip(p=0.5)]
        elif name == "ssd":
            steps = [
                v2.RandomPhotometricDistort(p=1.0),
                v2.RandomZoomOut(fill={tv_tensors.Image: _MEAN_FILL, "others": 0}),
                v2.RandomIoUCrop(),
                v2.RandomHorizontalFlip(p=0.5),
                v2.SanitizeBoundingBoxes(),
            ]
        else:
            steps = []
        self.transform = v2.Compose(steps)

    def __call__(
        self, image: Tensor, target: dict[str, Any], key: tuple[int, int]
    ) -> tuple[Tensor, dict[str, Any]]:
        if self.name == "none":
            return image, target
        boxes = tv_tensors.BoundingBoxes(
            torch.from_numpy(target["boxes"]), format="XYXY", canvas_size=tuple(image.shape[-2:])
        )
        wanted = {"boxes": boxes, "labels": torch.from_numpy(target["labels"])}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((self.seed, *key)) & 0x7FFF_FFFF_FFFF_FFFF)
            out_image, out = self.transform(tv_tensors.Image(image), wanted)
        boxes_np = out["boxes"].numpy().astype(np.float32)
        area = (boxes_np[:, 2] - boxes_np[:, 0]) * (boxes_np[:, 3] - boxes_np[:, 1])
        return out_image.as_subclass(Tensor).contiguous(), {
            **target,
            "boxes": boxes_np,
            "labels": out["labels"].numpy().astype(np.int64),
            "area": area,
            "iscrowd": np.zeros(len(boxes_np), np.int64),
        }
