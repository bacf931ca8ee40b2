"""On a CUDA device the tail replays its fixed-shape part (decoder, stages, FPN) from CUDA graphs:
the same detections as eager, one capture per latent shape, at most MAX_GRAPHS of them. Runs where
CUDA is (the GPU machine); skipped elsewhere."""

import numpy as np
import pytest
import torch
from sc2_split.models import cuda_graph
from sc2_split.models.build import build_detector, model_id
from sc2_split.models.config import load_model_config
from sc2_split.models.split import Head, image_geometry
from sc2_split.tail import TailPipeline

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _latent(model: torch.nn.Module, height: int, width: int, seed: int) -> tuple[np.ndarray, object]:
    rng = np.random.default_rng(seed)
    frame = np.kron(rng.integers(0, 256, (height // 8, width // 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    geometry = image_geometry(model, height, width)
    with torch.inference_mode():
        return Head(model, geometry).eval()(torch.from_numpy(frame)).numpy(), geometry


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_graphed_tail_detects_as_the_eager_one(small_models: dict[str, tuple], precision: str) -> None:
    config, checkpoint = small_models["sc2_resnet50_fp"]
    model = build_detector(load_model_config(config), checkpoint)
    name = model_id("small_fp", model)
    # torchvision's heads in both: the batched heads' graphs are test_batched_heads.py's, and at this
    # random model's margins its NMS decides a few boxes otherwise than torchvision's offset boxes.
    eager = TailPipeline(model, name, "cuda", precision, cuda_graphs=False, batched_heads=False)
    graphed = TailPipeline(model, name, "cuda", precision, cuda_graphs=True, batched_heads=False)
    for seed in range(3):  # replays with new inputs, not only the captured one
        latent, geometry = _latent(model, 96, 128, seed)
        want, got = eager.detect(latent, geometry), graphed.detect(latent, geometry)
        assert len(want["boxes"]) > 0
        np.testing.assert_array_equal(got["labels"], want["labels"])
        np.testing.assert_allclose(got["boxes"], want["boxes"], rtol=1e-3, atol=1e-2)
        np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-3, atol=1e-4)


def test_one_graph_per_latent_shape_and_no_more_than_the_cap(
    small_models: dict[str, tuple], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The small model's transform maps frame sizes onto few latent shapes (6 here): a cap below that.
    monkeypatch.setattr(cuda_graph, "MAX_GRAPHS", 3)
    config, checkpoint = small_models["sc2_resnet50_fp"]
    model = build_detector(load_model_config(config), checkpoint)
    tail = TailPipeline(model, model_id("small_fp", model), "cuda")
    sizes = [(96 + 32 * i, 128) for i in range(6)] + [(128, 96 + 32 * i) for i in range(6)]
    shapes = set()
    for height, width in sizes + sizes[:1]:
        latent, geometry = _latent(model, height, width, 0)
        shapes.add(latent.shape)
        tail.detect(latent, geometry)  # beyond the cap: eager, still detections
    assert len(shapes) > cuda_graph.MAX_GRAPHS
    assert len(tail._features._graphs) == cuda_graph.MAX_GRAPHS


def test_graphs_sharing_one_pool_detect_as_eager_in_any_order(small_models: dict[str, tuple]) -> None:
    config, checkpoint = small_models["sc2_resnet50_fp"]
    model = build_detector(load_model_config(config), checkpoint)
    name = model_id("small_fp", model)
    eager = TailPipeline(model, name, "cuda", cuda_graphs=False)
    graphed = TailPipeline(model, name, "cuda")
    graphed.warm_up(128, 96, 4)  # batch sizes 1, 2 and 4, captured in turn into one pool
    latents = [_latent(model, 96, 128, seed) for seed in range(4)]
    geometry = latents[0][1]
    for size in (4, 1, 2, 4, 1):  # each replay overwrites what the others' intermediates held
        batch = [latent for latent, _ in latents[:size]]
        want = eager.detect_batch(batch, [geometry] * size)
        got = graphed.detect_batch(batch, [geometry] * size)
        for w, g in zip(want, got, strict=True):
            np.testing.assert_array_equal(g["labels"], w["labels"])
            np.testing.assert_allclose(g["boxes"], w["boxes"], rtol=1e-3, atol=1e-2)
