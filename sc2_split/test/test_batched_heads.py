"""The batched heads (models/batched_heads.py) detect as torchvision's image-by-image heads: the same
boxes, scores and labels for the bundled demo model's sample frames, and a suppression that keeps
exactly what torchvision's NMS keeps, group by group, whatever else a batch holds."""

import os
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from sc2_split.bundled import DEMO_CHECKPOINT
from sc2_split.data import sample_frames
from sc2_split.geometry import ImageGeometry
from sc2_split.models import batched_heads
from sc2_split.models.batched_heads import grouped_nms
from sc2_split.models.build import build_detector
from sc2_split.models.config import checkpoint_path, config_path, load_model_config
from sc2_split.models.split import Head, Tail, image_geometry
from sc2_split.tail import TailPipeline
from torchvision.ops import nms


def random_boxes(rng: np.random.Generator, count: int) -> torch.Tensor:
    """Clustered boxes, so that many pairs overlap near the thresholds."""
    centres = rng.uniform(0, 200, (count, 2))
    sizes = rng.uniform(5, 60, (count, 2))
    return torch.from_numpy(np.concatenate([centres - sizes / 2, centres + sizes / 2], 1)).float()


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
@pytest.mark.parametrize(
    ("device", "pairs_per_chunk"),
    [
        ("cpu", batched_heads.PAIRS_PER_CHUNK),
        ("cpu", 1),
        pytest.param("cuda", batched_heads.PAIRS_PER_CHUNK, marks=CUDA),
    ],
)
def test_grouped_nms_keeps_what_nms_keeps_in_each_group(
    threshold: float, device: str, pairs_per_chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On CPU the dense suppression (1 pair a chunk: a group a chunk), on CUDA the kernel."""
    monkeypatch.setattr(batched_heads, "PAIRS_PER_CHUNK", pairs_per_chunk)
    assert device == "cpu" or batched_heads._nms_cuda() is not None
    rng = np.random.default_rng(3)
    boxes = random_boxes(rng, 600)
    scores = torch.from_numpy(rng.uniform(0, 1, 600)).float()
    groups = torch.from_numpy(rng.integers(0, 7, 600))
    kept = grouped_nms(boxes.to(device), scores.to(device), groups.to(device), threshold).cpu()
    expected = torch.cat(
        [
            torch.where(groups == g)[0][nms(boxes[groups == g], scores[groups == g], threshold)]
            for g in range(7)
        ]
    )
    assert torch.equal(kept, expected.sort().values)
    assert len(kept) < 600  # the data suppresses something


def test_a_groups_result_does_not_depend_on_the_other_groups() -> None:
    rng = np.random.default_rng(5)
    boxes = random_boxes(rng, 300)
    # Coarse scores: many ties, which break by position within the group.
    scores = torch.from_numpy(rng.integers(0, 4, 300) / 4).float()
    alone = grouped_nms(boxes, scores, torch.zeros(300, dtype=torch.int64), 0.5)
    others = random_boxes(rng, 500)
    batch = torch.cat([others[:200], boxes, others[200:]])
    batch_scores = torch.cat([torch.ones(200), scores, torch.ones(300)])
    groups = torch.cat([torch.full((200,), 3), torch.full((300,), 1), torch.full((300,), 2)])
    kept = grouped_nms(batch, batch_scores, groups, 0.5)
    assert torch.equal(kept[(kept >= 200) & (kept < 500)] - 200, alone)


def test_equal_scores_keep_the_first_box() -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    scores = torch.tensor([0.5, 0.5, 0.5, 0.5])
    assert grouped_nms(boxes, scores, torch.zeros(4, dtype=torch.int64), 0.5).tolist() == [0, 3]


def test_grouped_nms_of_nothing() -> None:
    empty = torch.empty((0, 4))
    assert len(grouped_nms(empty, torch.empty(0), torch.empty(0, dtype=torch.int64), 0.5)) == 0


# The CUDA kernel (models/nms_cuda.py) under numba's CUDA simulator, which must be chosen before numba
# is imported: in a process of its own. Groups larger and smaller than a block's threads.
SIMULATED_KERNEL = """
import numpy as np, torch
from sc2_split.models import nms_cuda
from sc2_split.models.batched_heads import _kept_by_fixed_point
from torchvision.ops import nms
rng = np.random.default_rng(7)
counts = np.array([1, 40, 75, 9, 60])
for threshold in (0.3, 0.5, 0.7):
    groups = []
    for count in counts:
        centres = rng.uniform(0, 60, (count, 2))
        sizes = rng.uniform(20, 40, (count, 1)) * rng.uniform(0.8, 1.2, (count, 2))
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1).astype(np.float32)
        scores = np.sort(rng.uniform(0, 1, count).astype(np.float32))[::-1]
        groups.append((boxes, scores))
    flat = np.concatenate([b for b, _ in groups])
    kept = np.full(len(flat), 7, np.uint8)
    starts = np.cumsum(counts) - counts
    nms_cuda.launch(flat.reshape(-1), starts, counts, int(counts.max()), threshold, kept, threads=32)
    want = np.zeros(len(flat), bool)
    for start, (boxes, scores) in zip(starts, groups):
        want[start + nms(torch.from_numpy(boxes), torch.from_numpy(scores.copy()), threshold).numpy()] = True
    assert set(np.unique(kept)) <= {0, 1}, np.unique(kept)
    assert (kept.astype(bool) == want).all(), (threshold, np.flatnonzero(kept.astype(bool) != want))
    dense = _kept_by_fixed_point(torch.from_numpy(flat), torch.from_numpy(counts), counts.max(), threshold)
    assert (dense.numpy() == want).all()
    assert want.sum() < len(flat) - 5, (threshold, want.sum())  # the data suppresses something
print("kernel ok")
"""


def test_the_cuda_kernel_keeps_what_nms_keeps_in_each_group() -> None:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    run = subprocess.run(
        [sys.executable, "-c", SIMULATED_KERNEL], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0 and "kernel ok" in run.stdout, run.stderr[-3000:]


def demo_latents() -> tuple[torch.nn.Module, ImageGeometry, list[torch.Tensor]]:
    """The bundled demo model, the geometry of its sample frames and their four latents."""
    model = build_detector(load_model_config(config_path("demo_fp")), checkpoint_path(DEMO_CHECKPOINT)).eval()
    geometry = image_geometry(model, 480, 640)
    head = Head(model, geometry).eval()
    with torch.inference_mode():
        return model, geometry, [head(torch.from_numpy(frame.copy())) for frame in sample_frames(480, 640, 4)]


@pytest.fixture(scope="module")
def demo() -> tuple[Tail, OrderedDict, ImageGeometry]:
    """The demo model's tail, the features of four sample frames, and their geometry."""
    model, geometry, latents = demo_latents()
    tail = Tail(model).eval()
    with torch.inference_mode():
        return tail, tail.features(torch.cat(latents)), geometry


@pytest.mark.parametrize("batch", [1, 4])
def test_batched_heads_detect_as_torchvision(demo: tuple, batch: int) -> None:
    tail, features, geometry = demo
    features = OrderedDict((name, level[:batch]) for name, level in features.items())
    with torch.inference_mode():
        expected = tail.detections(features, [geometry] * batch)
        found = tail.detections(features, [geometry] * batch, batched=True)
    assert len(found) == batch
    for want, got in zip(expected, found, strict=True):
        assert len(want["boxes"]) > 0
        for key in ("boxes", "scores", "labels"):
            assert got[key].dtype == want[key].dtype
            torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)


@CUDA
def test_batched_heads_on_cuda_detect_as_torchvision() -> None:
    """On a GPU the tail runs the batched heads by default: torchvision's detections there, within
    float32's reordering (torchvision's CUDA NMS offsets boxes by their group)."""
    model, geometry, tensors = demo_latents()
    latents = [latent.numpy() for latent in tensors]
    batched = TailPipeline(model, "demo", "cuda")
    assert batched.batched_heads
    torchvision_heads = TailPipeline(model, "demo", "cuda", batched_heads=False)
    want = torchvision_heads.detect_batch(latents, [geometry] * 4)
    got = batched.detect_batch(latents, [geometry] * 4)
    for w, g in zip(want, got, strict=True):
        assert len(w["boxes"]) > 0
        np.testing.assert_array_equal(g["labels"], w["labels"])
        np.testing.assert_allclose(g["boxes"], w["boxes"], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(g["scores"], w["scores"], rtol=1e-4, atol=1e-5)
