"""A served tail warms up before its first robot: every batch size it pads to runs once for the
camera's size (on CUDA each one's graph is captured then, not while robots wait), a size the model
cannot take is refused, `tail_server --warm-up` reads WIDTHxHEIGHT, and the batcher's preferred
sizes by default are those a CUDA tail runs unpadded. The CUDA case runs where
CUDA is (the GPU machine)."""

import argparse

import pytest
import torch
from sc2_split.codecs.payload import PayloadError
from sc2_split.serving.repository import model_config_text
from sc2_split.serving.server import Batching, frame_size, unpadded_sizes
from sc2_split.tail import TailPipeline

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")),
]


@pytest.mark.parametrize("device", DEVICES)
def test_warm_up_runs_every_padded_batch_size(device: str) -> None:
    tail = TailPipeline.from_config("demo_fp", "demo_fp_beta4.5_stage2", device=device)
    tail.warm_up(640, 480, 3)
    if device == "cuda":  # batches 1, 2 and 3 (padded to 4): three graphs of the one latent shape
        assert sorted(shape[0][0] for shape in tail._features._graphs) == [1, 2, 4]
    with pytest.raises(ValueError, match="positive"):
        tail.warm_up(0, 480, 1)
    with pytest.raises(PayloadError, match="does not fit"):
        tail.warm_up(20_000, 480, 1)


def test_warm_up_sizes_are_width_by_height() -> None:
    assert frame_size("640x480") == (640, 480)
    for text in ("640", "640x", "x480", "-1x480", "640x480x3", "axb"):
        with pytest.raises(argparse.ArgumentTypeError):
            frame_size(text)


def test_the_default_preferred_sizes_are_the_unpadded_ones_from_8() -> None:
    if torch.cuda.is_available():  # what warm-up captures is what the batcher then forms
        tail = TailPipeline.from_config("demo_fp", "demo_fp_beta4.5_stage2", device="cuda")
        tail.warm_up(640, 480, 32)
        captured = sorted(shape[0][0] for shape in tail._features._graphs)
        assert list(unpadded_sizes(["cuda"], 32)) == [size for size in captured if size >= 8] == [8, 16, 32]
    assert unpadded_sizes(["cuda:1"], 24) == (8, 16)  # 17 to 24 frames run as 32: no size of its own
    assert unpadded_sizes(["cpu"], 32) == ()  # a CPU tail pads nothing
    # Both servers take them from Batching, unless it names its own (none, here).
    assert Batching().preferred_on(["cuda:0"]) == (8, 16, 32)
    assert Batching(preferred=()).preferred_on(["cuda"]) == ()
    assert "preferred_batch_size: [ 8, 16, 32 ]" in model_config_text("m", Batching(), ["cuda:0"], {})
    assert "preferred_batch_size" not in model_config_text("m", Batching(), ["cpu"], {})
