"""Where a phase's images come from, epoch by epoch, and the batches each process loads.

A source is a COCO-format folder (`data.coco.CocoDetection`: the user's data, or procedural frames
written by `data.synthetic.write_split`) or the procedural frames generated on the fly, which the
demo trains on: an endless stream cut into epochs of new frames, identical to the written ones.
Every process loads its own share of each epoch (DistributedSampler), so the global batch of a
step is the same for one process with batch B x N as for N processes with batch B. Samples are
asked for by (epoch, index), so that one DataLoader and its worker processes serve every epoch.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from sc2_split.data.coco import CocoDetection
from sc2_split.data.synthetic import frame
from sc2_split.training.distributed import World
from sc2_split.training.settings import RunSettings


class SyntheticFrames(Dataset):
    """The procedural stream: (epoch e, index i) is frame start + e * length + i of the split, so
    every epoch brings new frames; a plain index i is (0, i)."""

    def __init__(self, split: str, length: int, seed: int = 0, start: int = 0) -> None:
        self.split, self.length, self.seed, self.start = split, length, seed, start

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, dict[str, Any]]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        image, target = frame(self.split, self.start + epoch * self.length + index, self.seed)
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), target


@dataclass(frozen=True)
class SyntheticSource:
    """Procedural frames, frames_per_epoch an epoch, never repeated."""

    split: str
    frames_per_epoch: int
    seed: int = 0
    start: int = 0
    categories: list[dict[str, Any]] | None = None  # evaluation's default: the procedural shapes
    shuffle: bool = False  # every frame is already random

    @property
    def dataset(self) -> SyntheticFrames:
        return SyntheticFrames(self.split, self.frames_per_epoch, self.seed, self.start)


@dataclass(frozen=True)
class CocoSource:
    """A COCO-format folder: the same images every epoch, shuffled and augmented anew."""

    dataset: CocoDetection
    shuffle: bool = True

    @property
    def categories(self) -> list[dict[str, Any]]:
        return self.dataset.categories


Source = SyntheticSource | CocoSource


class EpochSampler(Sampler):
    """This process's share of the current epoch (DistributedSampler's) as (epoch, index) keys."""

    def __init__(self, length: int, world: World, shuffle: bool, seed: int) -> None:
        self.share = DistributedSampler(range(length), world.size, world.rank, shuffle=shuffle, seed=seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.share.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, index) for index in self.share)

    def __len__(self) -> int:
        return len(self.share)


def training_batches(source: Source, run: RunSettings) -> DataLoader:
    """This process's batches, (list of images, list of targets), of the epoch its sampler is set to."""
    dataset = source.dataset
    sampler = EpochSampler(len(dataset), run.world, source.shuffle, run.seed)
    return _loader(dataset, run, sampler, persistent=True)


def evaluation_batches(source: Source, run: RunSettings) -> DataLoader:
    """All of the source's first epoch, in order (the main process evaluates)."""
    return _loader(source.dataset, run, None)


def detection_targets(targets: list[dict[str, Any]], device: torch.device) -> list[dict[str, Tensor]]:
    """The boxes and labels torchvision's detectors train on, on the device."""
    return [
        {
            "boxes": torch.from_numpy(t["boxes"]).to(device, non_blocking=True),
            "labels": torch.from_numpy(t["labels"]).to(device, non_blocking=True),
        }
        for t in targets
    ]


def _loader(
    dataset: Dataset, run: RunSettings, sampler: Sampler | None, persistent: bool = False
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=run.batch_size,
        sampler=sampler,
        num_workers=run.workers,
        collate_fn=_as_lists,
        pin_memory=run.device.type == "cuda",
        prefetch_factor=4 if run.workers else None,
        persistent_workers=persistent and run.workers > 0,
    )


def _as_lists(batch: list[tuple[Tensor, dict[str, Any]]]) -> tuple[list[Tensor], list[dict[str, Any]]]:
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)
