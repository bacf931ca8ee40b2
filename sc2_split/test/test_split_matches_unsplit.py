"""Head -> codec -> tail gives the unsplit model's detections: exactly where the codec is exact
(the entropy codec for the entropic student, quant8 for the 8-bit model), within a stated
tolerance where it is lossy."""

import numpy as np
import pytest
import torch
from sc2_split.frames import CodedFrame
from sc2_split.models.build import build_detector, model_id
from sc2_split.models.config import load_model_config
from sc2_split.models.split import Head, Tail, image_geometry
from sc2_split.tail import TailPipeline
from torch import nn
from torchdistill.common.tensor_util import dequantize_tensor, quantize_tensor
from torchvision.transforms.functional import to_tensor

# (model, codec, exact): the codec the model itself uses is exact, the others are lossy.
CASES = [
    ("sc2_resnet50_fp", "entropy", True),
    ("sc2_resnet50_fp", "fp16", False),
    ("sc2_resnet50_fp", "quant8", False),
    ("sc2_resnet50_bq8", "quant8", True),
    ("sc2_resnet50_bq8", "fp16", False),
]


def frames() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    smooth = np.kron(rng.integers(0, 256, (12, 16, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    return [smooth, rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)]


@pytest.fixture(scope="module")
def runs(small_models: dict[str, tuple]) -> dict[str, tuple]:
    """Per model: the model, its tail pipeline, and per frame (geometry, latent, unsplit detections)."""
    out = {}
    for name, (config, checkpoint) in small_models.items():
        model = build_detector(load_model_config(config), checkpoint)
        tail = TailPipeline(model, model_id(name, model))
        per_frame = []
        for frame in frames():
            geometry = image_geometry(model, *frame.shape[:2])
            with torch.inference_mode():
                latent = Head(model, geometry).eval()(torch.from_numpy(frame)).numpy()
                unsplit = model([to_tensor(frame)])[0]
            per_frame.append((geometry, latent, {k: v.numpy() for k, v in unsplit.items()}))
        out[name] = (tail, per_frame)
    return out


def unsplit_decoder_input(tail: TailPipeline, latent: np.ndarray) -> np.ndarray:
    """What the unsplit model feeds its decoder: the entropic student rounds around the prior's
    medians; the 8-bit model quantizes with torchdistill."""
    x = torch.from_numpy(latent)
    if tail.tail.medians is None:
        return dequantize_tensor(quantize_tensor(x, num_bits=8)).numpy()
    return tail.tail.decoder_input(x).numpy()


@pytest.mark.parametrize(("name", "codec", "exact"), CASES)
def test_split_detections_match_unsplit(runs: dict, name: str, codec: str, exact: bool) -> None:
    tail, per_frame = runs[name]
    for geometry, latent, unsplit in per_frame:
        encoded = tail.codecs[codec].encode(latent)
        if exact:
            split = tail(CodedFrame(encoded, geometry, tail.model_id))
            assert len(unsplit["boxes"]) > 0
            np.testing.assert_array_equal(split.boxes, unsplit["boxes"])
            np.testing.assert_array_equal(split.scores, unsplit["scores"])
            np.testing.assert_array_equal(split.labels, unsplit["labels"])
            continue
        # Lossy: random weights give near-uniform scores, so detections reorder under any
        # perturbation; the tolerance is stated where it is exact, at the decoder's input. The
        # codec moves each latent element by at most `bound` (fp16: half a unit in the last place;
        # quant8: one step, torchdistill truncates the zero point). Where the model rounds
        # afterwards (entropic student), an element may change only if it lay within `bound` of a
        # rounding boundary; elsewhere (8-bit model) it may move by at most `bound` plus one step.
        decoded = tail.codecs[codec].decode(encoded, latent.shape)
        bound = np.abs(decoded - latent).max()
        limit = np.abs(latent).max() * 2.0**-11 if codec == "fp16" else encoded.scale * (1 + 1e-5)
        assert bound <= limit
        expected = unsplit_decoder_input(tail, latent)
        actual = tail.tail.decoder_input(torch.from_numpy(decoded)).numpy()
        changed = actual != expected
        if tail.tail.medians is not None:
            residual = latent - tail.tail.medians.numpy()
            near_boundary = np.abs(np.abs(residual - np.floor(residual)) - 0.5) <= bound
            assert not (changed & ~near_boundary).any()
            print(
                f"{name}/{codec}: {changed.mean():.4%} of decoder inputs changed, all at rounding boundaries"
            )
        else:
            step = float(quantize_tensor(torch.from_numpy(latent), num_bits=8).scale)
            assert np.abs(actual - expected).max() <= bound + step * (1 + 1e-5)


def test_a_tail_with_its_batch_norms_folded_computes_the_same_features(small_models: dict) -> None:
    """A CUDA tail folds its stages' batch norms into their convolutions (Tail.fold_batch_norms), then
    fuses them with their ReLUs (Tail.fuse_conv_relus)."""
    model = build_detector(load_model_config(small_models["sc2_resnet50_fp"][0])).eval()
    rng = torch.Generator().manual_seed(3)
    ranges = {"running_mean": (-1, 1), "running_var": (0.5, 2), "weight": (0.5, 2)}  # statistics to fold
    for norm in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        for stat, (low, high) in ranges.items():
            getattr(norm, stat).data = torch.rand(norm.num_features, generator=rng) * (high - low) + low
    tail, folded = Tail(model).eval(), Tail(model).eval()
    folded.fold_batch_norms()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.stages.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in tail.stages.modules())  # the model's own stay
    frame = frames()[1]
    with torch.inference_mode():
        latent = Head(model, image_geometry(model, *frame.shape[:2])).eval()(torch.from_numpy(frame))
        want, got = tail.features(latent), folded.features(latent)
        # Then each convolution + bias (+ residual) + ReLU as one module (one cuDNN kernel on CUDA,
        # operation by operation here): the same features, bit for bit.
        before = {name: level.clone() for name, level in got.items()}
        blocks = sum(len(stage) for stage in tail.stages.values())  # bottlenecks: 3 convolutions each
        geometry = [image_geometry(model, *frame.shape[:2])]
        unfused_detections = folded.detections(before, geometry)
        assert folded.fuse_conv_relus() == 3 * blocks + 1  # and the RPN head's convolution
        fused = folded.features(latent)
        fused_detections = folded.detections(fused, geometry)
    for name, level in want.items():
        torch.testing.assert_close(got[name], level, rtol=1e-4, atol=1e-4 * float(level.abs().max()))
        assert torch.equal(fused[name], before[name])
    assert folded.rpn is not model.rpn and tail.rpn is model.rpn  # fused in a copy of the RPN
    for key, value in unfused_detections[0].items():
        assert torch.equal(fused_detections[0][key], value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fused_convolutions_on_cuda_compute_the_features_within_float16s_rounding(small_models: dict) -> None:
    """On CUDA a ConvReLU is one cuDNN kernel (its bias, residual and ReLU in float32, before the
    output's rounding to float16): close to the unfused float16 operations, not equal to them."""
    model = build_detector(load_model_config(small_models["sc2_resnet50_fp"][0])).eval()
    frame = frames()[1]
    with torch.inference_mode():
        latent = Head(model, image_geometry(model, *frame.shape[:2])).eval()(torch.from_numpy(frame)).cuda()
        folded, fused = Tail(model).cuda().eval(), Tail(model).cuda().eval()
        folded.fold_batch_norms()
        fused.fold_batch_norms()
        assert fused.fuse_conv_relus() > 0
        with torch.autocast("cuda", torch.float16):
            want, got = folded.features(latent), fused.features(latent)
    for name, level in want.items():
        assert got[name].dtype == level.dtype
        torch.testing.assert_close(got[name], level, rtol=2e-2, atol=2e-2 * float(level.abs().max()))
