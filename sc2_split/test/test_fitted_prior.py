"""benchmarks/fitted_prior.py: a random model with its prior fit codes its latents in a fraction of
the bytes, decodes them as compressai does, and keeps every other weight."""

import numpy as np
import torch
from sc2_split.benchmarks.fitted_prior import HEIGHT, WIDTH, write_fitted
from sc2_split.codecs import make_codec
from sc2_split.data import sample_frames
from sc2_split.models.build import build_detector
from sc2_split.models.config import bundled_config_path, load_model_config
from sc2_split.models.entropy_tables import tables_from_entropy_bottleneck
from sc2_split.models.split import Head, entropy_bottleneck, image_geometry

CONFIG = "demo_fp"


def test_fitted_prior_shrinks_a_random_models_payload(tmp_path):
    checkpoint = tmp_path / "fitted.pt"
    write_fitted(CONFIG, checkpoint, seed=3, frames=2, steps=100)
    torch.manual_seed(3)  # the random weights write_fitted starts from
    config = load_model_config(bundled_config_path(CONFIG))
    random, fitted = build_detector(config), build_detector(config, checkpoint)

    kept = {k: v for k, v in fitted.state_dict().items() if "entropy_bottleneck" not in k}
    assert all(torch.equal(v, random.state_dict()[k]) for k, v in kept.items())

    head = Head(fitted, image_geometry(fitted, HEIGHT, WIDTH)).eval()
    with torch.inference_mode():
        latents = [head(torch.from_numpy(f)) for f in sample_frames(HEIGHT, WIDTH, 3)]
    sizes = {}
    for name, model in (("random", random), ("fitted", fitted)):
        prior = entropy_bottleneck(model)
        codec = make_codec("entropy", tables_from_entropy_bottleneck(prior), entropy_version=2)
        encoded = [codec.encode(y.numpy()) for y in latents]
        sizes[name] = np.mean([e.nbytes for e in encoded])
        for y, e in zip(latents, encoded, strict=True):
            with torch.no_grad():
                expected = prior.decompress(prior.compress(y), y.shape[2:])
            np.testing.assert_allclose(codec.decode(e, tuple(y.shape)), expected.numpy(), atol=1e-5)
    # A frame the fit never saw (the third) is coded small too: the prior fits the encoder, not frames.
    assert sizes["fitted"] < sizes["random"] / 4, sizes
