"""A phase's batches come from one DataLoader iterator, epoch after epoch: each epoch is the
process's whole share, shuffled anew, its last batch shorter; a resumed phase starts at its epoch;
two processes split each epoch between them without overlap."""

import itertools

import torch
from sc2_split.training.distributed import World
from sc2_split.training.sources import EpochBatches

_CPU = torch.device("cpu")


def _epochs(batches: EpochBatches, count: int) -> list[list[list[tuple[int, int]]]]:
    stream = iter(batches)
    return [list(itertools.islice(stream, len(batches))) for _ in range(count)]


def test_the_stream_goes_on_across_epochs_each_a_new_permutation() -> None:
    batches = EpochBatches(10, 4, World(0, 1, _CPU), shuffle=True, seed=0, first_epoch=0)
    assert len(batches) == 3
    epochs = _epochs(batches, 3)
    for epoch, cut in enumerate(epochs):
        assert [len(b) for b in cut] == [4, 4, 2]
        keys = [key for batch in cut for key in batch]
        assert {e for e, _ in keys} == {epoch}
        assert sorted(i for _, i in keys) == list(range(10))
    orders = [[i for batch in cut for _, i in batch] for cut in epochs]
    assert orders[0] != orders[1] != orders[2]


def test_a_resumed_phase_starts_at_its_epoch_with_that_epochs_order() -> None:
    fresh = _epochs(EpochBatches(10, 4, World(0, 1, _CPU), True, 0, first_epoch=0), 3)
    resumed = _epochs(EpochBatches(10, 4, World(0, 1, _CPU), True, 0, first_epoch=2), 1)
    assert resumed[0] == fresh[2]


def test_two_processes_share_each_epoch_without_overlap() -> None:
    shares = [_epochs(EpochBatches(8, 2, World(rank, 2, _CPU), True, 0, 0), 2) for rank in (0, 1)]
    for epoch in range(2):
        keys = [key for share in shares for batch in share[epoch] for key in batch]
        assert sorted(keys) == [(epoch, i) for i in range(8)]
