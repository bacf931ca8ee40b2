"""The batched heads (models/batched_heads.py) detect as torchvision's image-by-image heads: the same
boxes, scores and labels for the bundled demo model's sample frames, and a suppression that keeps
exactly what torchvision's NMS keeps, group by group, whatever else a batch holds."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from kernel_fixtures import run_interpreted, run_simulated
from sc2_split.bundled import DEMO_CHECKPOINT
from sc2_split.data import sample_frames
from sc2_split.geometry import ImageGeometry
from sc2_split.models import batched_heads
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


def kept_in_rows(
    boxes: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor, threshold: float
) -> torch.Tensor:
    return batched_heads._kept_in_rows(boxes, scores, valid, threshold)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
@pytest.mark.parametrize(
    ("device", "pairs_per_chunk"),
    [
        ("cpu", batched_heads.PAIRS_PER_CHUNK),
        ("cpu", 1),
        pytest.param("cuda", batched_heads.PAIRS_PER_CHUNK, marks=CUDA),
    ],
)
def test_each_row_keeps_what_nms_keeps_of_its_valid_boxes(
    threshold: float, device: str, pairs_per_chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On CPU the dense suppression (1 pair a chunk: a group a chunk), on CUDA the kernel. Rows of
    7 groups, one empty, the others with a third of their boxes masked out."""
    monkeypatch.setattr(batched_heads, "PAIRS_PER_CHUNK", pairs_per_chunk)
    assert device == "cpu" or batched_heads.graphable(torch.device(device))
    rng = np.random.default_rng(3)
    boxes = random_boxes(rng, 7 * 250).view(7, 250, 4)
    scores = torch.from_numpy(rng.uniform(0, 1, (7, 250))).float()
    valid = torch.from_numpy(rng.uniform(0, 1, (7, 250)) > 0.33)
    valid[4] = False
    kept = kept_in_rows(boxes.to(device), scores.to(device), valid.to(device), threshold).cpu()
    for g in range(7):
        mine = torch.where(valid[g])[0]
        expected = torch.zeros(250, dtype=torch.bool)
        expected[mine[nms(boxes[g, mine], scores[g, mine], threshold)]] = True
        assert torch.equal(kept[g], expected), g
    assert valid.sum() > kept.sum() > 0  # the data suppresses something


def test_a_groups_result_does_not_depend_on_the_other_groups() -> None:
    rng = np.random.default_rng(5)
    boxes = random_boxes(rng, 300)
    # Coarse scores: many ties, which break by position within the group.
    scores = torch.from_numpy(rng.integers(0, 4, 300) / 4).float()
    valid = torch.ones(300, dtype=torch.bool)
    alone = kept_in_rows(boxes[None], scores[None], valid[None], 0.5)[0]
    others = random_boxes(rng, 600).view(2, 300, 4)
    batch = torch.stack([others[0], boxes, others[1]])
    kept = kept_in_rows(
        batch, torch.stack([torch.ones(300), scores, scores.flip(0)]), valid.expand(3, -1), 0.5
    )
    assert torch.equal(kept[1], alone)
    assert 0 < alone.sum() < 300


def test_equal_scores_keep_the_first_box() -> None:
    boxes = torch.tensor([[[0.0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]]])
    scores = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    kept = kept_in_rows(boxes, scores, torch.ones((1, 4), dtype=torch.bool), 0.5)
    assert kept.tolist() == [[True, False, False, True]]


def test_rows_of_nothing_keep_nothing() -> None:
    kept = kept_in_rows(
        torch.zeros((3, 5, 4)), torch.zeros((3, 5)), torch.zeros((3, 5), dtype=torch.bool), 0.5
    )
    assert not kept.any()


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
    rows = np.zeros((len(counts), counts.max(), 4), np.float32)
    for g, (boxes, _) in enumerate(groups):
        rows[g, : len(boxes)] = boxes
    dense = _kept_by_fixed_point(torch.from_numpy(rows), torch.from_numpy(counts), threshold).numpy()
    assert (np.concatenate([row[:n] for row, n in zip(dense, counts)]) == want).all()
    assert want.sum() < len(flat) - 5, (threshold, want.sum())  # the data suppresses something
print("kernel ok")
"""


def test_the_cuda_kernel_keeps_what_nms_keeps_in_each_group() -> None:
    run_simulated(SIMULATED_KERNEL)


# The ROI align kernel (models/roi_align_triton.py) under Triton's interpreter, against torchvision's
# roi_align on the same values: boxes partly outside the maps, empty ones and a NaN one (pooled as
# zeros, its reads clamped into the map), two levels in which each launch pools only its own boxes,
# two sampling grids, channels that do not fill the kernel's power-of-two block.
INTERPRETED_ROI_ALIGN = """
import numpy as np, torch
from sc2_split.models import roi_align_triton
from torchvision.ops import roi_align
rng = np.random.default_rng(3)
shapes, scales = [(9, 11), (5, 6)], [0.25, 0.125]
channels, images, boxes, size = 12, 2, 14, (3, 3)
maps = [rng.standard_normal((images, channels, *hw)).astype(np.float32) for hw in shapes]
corners = rng.uniform(-12, 50, (boxes, 2))
sides = rng.uniform(0, 30, (boxes, 2)) * (rng.uniform(0, 1, (boxes, 1)) > 0.2)  # a few empty boxes
rois = np.concatenate([rng.integers(0, images, (boxes, 1)), corners, corners + sides], 1).astype(np.float32)
rois[3, 1:] = np.nan
levels = rng.integers(0, len(shapes), boxes)
assert set(levels) == {0, 1}
real = np.arange(boxes) != 3
for dtype, atol in ((torch.float16, 2e-3), (torch.float32, 1e-5)):
    for ratio in (2, 1):
        out = torch.full((boxes, *size, channels), float("nan"), dtype=dtype).permute(0, 3, 1, 2)
        given = [torch.from_numpy(m).to(dtype).contiguous(memory_format=torch.channels_last) for m in maps]
        roi_align_triton.pool(given, scales, torch.from_numpy(rois), torch.from_numpy(levels), ratio, out)
        for level, (m, scale) in enumerate(zip(given, scales)):
            index = np.flatnonzero((levels == level) & real)
            want = roi_align(m.float(), torch.from_numpy(rois[index]), size, scale, ratio).numpy()
            got = out[index].float().numpy()
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=atol, err_msg=f"{dtype} {ratio} {level}")
        assert (out[3] == 0).all()
        assert out.float().abs().max() > 0.5  # the maps are sampled, not zeros
# torchvision's adaptive grid (ratio 0) and grids past the unrolled samples stay torchvision's.
assert roi_align_triton.supports((7, 7), 2) and not roi_align_triton.supports((7, 7), 0)
assert not roi_align_triton.supports((7, 7), 5)
print("kernel ok")
"""


def test_the_roi_align_kernel_pools_as_torchvision() -> None:
    run_interpreted(INTERPRETED_ROI_ALIGN)


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


@CUDA
def test_graphed_heads_detect_as_the_eager_ones() -> None:
    """From CUDA graphs (GraphedHeads) the batched heads give the eager ones' detections bit for bit,
    replayed on new frames and on a batch of 3 padded to the graphs' 4 (the eager heads given the
    padding frame too: the box head's matrix product may round otherwise for another number of
    rows)."""
    model, geometry, tensors = demo_latents()
    latents = [latent.numpy() for latent in tensors]
    graphed = TailPipeline(model, "demo", "cuda", "fp16")
    assert graphed._heads is not None
    eager = TailPipeline(model, "demo", "cuda", "fp16", cuda_graphs=False)
    padding = np.zeros_like(latents[0])
    for batch in (latents, latents[::-1], latents[:3]):
        got = graphed.detect_batch(batch, [geometry] * len(batch))
        want = eager.detect_batch([*batch, padding][:4], [geometry] * 4)
        assert len(got) == len(batch)
        for w, g in zip(want, got, strict=False):
            assert len(w["boxes"]) > 0
            for key in ("boxes", "scores", "labels"):
                np.testing.assert_array_equal(g[key], w[key])
    assert graphed._heads._graphs and not graphed._heads._eager  # replayed, not run eagerly
