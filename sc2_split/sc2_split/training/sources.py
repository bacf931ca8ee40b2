"""Where a phase's images come from, epoch by epoch, and the batches each process loads.

A source is a COCO-format folder (`data.coco.CocoDetection`: the user's data, or procedural frames
written by `data.synthetic.write_split`) or the procedural frames generated on the fly, which the
demo trains on: an endless stream cut into epochs of new frames, identical to the written ones.
Every process loads its own share of each epoch (DistributedSampler), so the global batch of a
step is the same for one process with batch B x N as for N processes with batch B.
"""

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from sc2_split.data.coco import CocoDetection
from sc2_split.data.synthetic import frame
from sc2_split.training.settings import RunSettings


class SyntheticFrames(Dataset):
    """Frames start .. start + length - 1 of a split: uint8 (3, H, W) tensors and numpy targets."""

    def __init__(self, split: str, length: int, seed: int = 0, start: int = 0) -> None:
        self.split, self.length, self.seed, self.start = split, length, seed, start

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Any]]:
        image, target = frame(self.split, self.start + index, self.seed)
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), target


@dataclass(frozen=True)
class SyntheticSource:
    """The procedural stream: epoch e is frames start + e * frames_per_epoch onwards, never repeated."""

    split: str
    frames_per_epoch: int
    seed: int = 0
    start: int = 0
    categories: list[dict[str, Any]] | None = None  # evaluation's default: the procedural shapes

    def epoch(self, epoch: int) -> Dataset:
        start = self.start + epoch * self.frames_per_epoch
        return SyntheticFrames(self.split, self.frames_per_epoch, self.seed, start)

    @property
    def shuffle(self) -> bool:
        return False  # every frame is already random


@dataclass(frozen=True)
class CocoSource:
    """A COCO-format folder: the same images every epoch, shuffled and augmented anew."""

    dataset: CocoDetection

    def epoch(self, epoch: int) -> Dataset:
        self.dataset.epoch = epoch  # the augmentation's seed; workers get a copy per epoch
        return self.dataset

    @property
    def shuffle(self) -> bool:
        return True

    @property
    def categories(self) -> list[dict[str, Any]]:
        return self.dataset.categories


Source = SyntheticSource | CocoSource


def training_batches(source: Source, epoch: int, run: RunSettings) -> DataLoader:
    """This process's batches of one epoch: (list of images, list of targets)."""
    dataset = source.epoch(epoch)
    world = run.world
    sampler = DistributedSampler(
        dataset, num_replicas=world.size, rank=world.rank, shuffle=source.shuffle, seed=run.seed
    )
    sampler.set_epoch(epoch)
    return _loader(dataset, run, sampler)


def evaluation_batches(source: Source, run: RunSettings) -> DataLoader:
    """All of the source's first epoch, in order (the main process evaluates)."""
    return _loader(source.epoch(0), run, None)


def detection_targets(targets: list[dict[str, Any]], device: torch.device) -> list[dict[str, Tensor]]:
    """The boxes and labels torchvision's detectors train on, on the device."""
    return [
        {
            "boxes": torch.from_numpy(t["boxes"]).to(device, non_blocking=True),
            "labels": torch.from_numpy(t["labels"]).to(device, non_blocking=True),
        }
        for t in targets
    ]


def _loader(dataset: Dataset, run: RunSettings, sampler: DistributedSampler | None) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=run.batch_size,
        sampler=sampler,
        num_workers=run.workers,
        collate_fn=_as_lists,
        pin_memory=run.device.type == "cuda",
        prefetch_factor=4 if run.workers else None,
    )


def _as_lists(batch: list[tuple[Tensor, dict[str, Any]]]) -> tuple[list[Tensor], list[dict[str, Any]]]:
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)
