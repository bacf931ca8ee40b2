"""Where a phase's images come from, epoch by epoch, and the batches each process loads.

A source is a COCO-format folder (`data.coco.CocoDetection`: the user's data, or procedural frames
written by `data.synthetic.write_split`) or the procedural frames generated on the fly, which the
demo trains on: an endless stream cut into epochs of new frames, identical to the written ones.
Every process loads its own share of each epoch (DistributedSampler), so the global batch of a
step is the same for one process with batch B x N as for N processes with batch B. Samples are
asked for by (epoch, index), and a phase's batches come as one stream, epoch after epoch, from one
DataLoader iterator: its workers go on loading the next epoch while the last batches train and the
state is saved, instead of starting again empty at every epoch boundary (there the training
waited for the state's saving and then for a worker to make a whole first batch).
"""

import itertools
import math
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


class EpochBatches(Sampler[list[tuple[int, int]]]):
    """This process's batches of (epoch, index) keys: its share of each epoch (DistributedSampler's)
    cut into batches, the last one of an epoch shorter, epoch after epoch from `first_epoch` on,
    without end. Its length is the number of batches an epoch."""

    def __init__(
        self, length: int, batch_size: int, world: World, shuffle: bool, seed: int, first_epoch: int
    ) -> None:
        self.share = DistributedSampler(range(length), world.size, world.rank, shuffle=shuffle, seed=seed)
        self.batch_size, self.first_epoch = batch_size, first_epoch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for epoch in itertools.count(self.first_epoch):
            self.share.set_epoch(epoch)
            keys = [(epoch, index) for index in self.share]
            for start in range(0, len(keys), self.batch_size):
                yield keys[start : start + self.batch_size]

    def __len__(self) -> int:
        return math.ceil(len(self.share) / self.batch_size)


def training_batches(source: Source, run: RunSettings, first_epoch: int = 0) -> DataLoader:
    """This process's batches, (list of images, list of targets), epoch after epoch from
    `first_epoch` on, without end; `len()` is the number of batches an epoch."""
    dataset = source.dataset
    batches = EpochBatches(len(dataset), run.batch_size, run.world, source.shuffle, run.seed, first_epoch)
    return _loader(dataset, run, batch_sampler=batches)


def evaluation_batches(source: Source, run: RunSettings) -> DataLoader:
    """All of the source's first epoch, in order (the main process evaluates)."""
    return _loader(source.dataset, run, batch_size=run.batch_size)


def detection_targets(targets: list[dict[str, Any]], device: torch.device) -> list[dict[str, Tensor]]:
    """The boxes and labels torchvision's detectors train on, on the device."""
    return [
        {
            "boxes": torch.from_numpy(t["boxes"]).to(device, non_blocking=True),
            "labels": torch.from_numpy(t["labels"]).to(device, non_blocking=True),
        }
        for t in targets
    ]


def _loader(dataset: Dataset, run: RunSettings, **batching: Any) -> DataLoader:
    return DataLoader(
        dataset,
        **batching,
        num_workers=run.workers,
        collate_fn=_as_lists,
        pin_memory=run.device.type == "cuda",
        prefetch_factor=4 if run.workers else None,
    )


def _as_lists(batch: list[tuple[Tensor, dict[str, Any]]]) -> tuple[list[Tensor], list[dict[str, Any]]]:
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)
