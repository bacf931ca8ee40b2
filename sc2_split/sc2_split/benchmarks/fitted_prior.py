"""Random weights whose entropy bottleneck's density is fit to their own latents: a serving workload
with a trained student's payload size.

With random weights the factorized prior is compressai's initial one, far wider than the encoder's
latents, so every element costs about 5.4 bits: the random ResNet-50 sends 880 KB a frame. Training
fits the prior to the latents, and a trained student sends a few KB (the bundled demo student 0.13
bits an element). A served tail's throughput depends on those bytes (gRPC, the backend's copies, the
GPU decoder's words); the network's cost does not depend on the weights' values. So the prior alone
is fit here, as a student's training fits it (its likelihood, and compressai's auxiliary loss for
its quantiles), the rest of the random weights untouched.

    python -m sc2_split.benchmarks.fitted_prior sc2_resnet50_fp out.pt
"""

import argparse
from pathlib import Path

import torch

from sc2_split.data import sample_frames
from sc2_split.models.build import build_detector, save_checkpoint
from sc2_split.models.config import bundled_config_path, load_model_config
from sc2_split.models.split import Head, entropy_bottleneck, image_geometry

HEIGHT, WIDTH = 480, 640


def fit_prior(prior: torch.nn.Module, latents: torch.Tensor, steps: int, crop: int = 64) -> None:
    """The factorized prior fit to latents (N, C, h, w) on random crops, then its coding tables."""
    quantiles = [p for n, p in prior.named_parameters() if n == "quantiles"]
    density = [p for n, p in prior.named_parameters() if n != "quantiles"]
    optimizer, aux_optimizer = torch.optim.Adam(density, 1e-2), torch.optim.Adam(quantiles, 1e-2)
    generator = torch.Generator().manual_seed(0)
    height, width = latents.shape[-2:]
    prior.train()
    for _ in range(steps):
        top = int(torch.randint(0, height - crop + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - crop + 1, (1,), generator=generator))
        _, likelihoods = prior(latents[..., top : top + crop, left : left + crop])
        optimizer.zero_grad(set_to_none=True)
        aux_optimizer.zero_grad(set_to_none=True)
        (-torch.log2(likelihoods).mean() + prior.loss()).backward()
        optimizer.step()
        aux_optimizer.step()
    prior.eval()
    prior.update(force=True)


def write_fitted(config: str, out: Path, seed: int = 0, frames: int = 8, steps: int = 200) -> None:
    """Writes the checkpoint of `config`'s model: random weights (`seed`), the prior fit to their
    latents of the sample frames."""
    torch.manual_seed(seed)
    model = build_detector(load_model_config(bundled_config_path(config)))
    prior = entropy_bottleneck(model)
    if prior is None:
        raise ValueError(f"{config} has no entropy bottleneck: there is no prior to fit")
    head = Head(model, image_geometry(model, HEIGHT, WIDTH)).eval()
    with torch.inference_mode():
        latents = torch.cat([head(torch.from_numpy(f)) for f in sample_frames(HEIGHT, WIDTH, frames)])
    fit_prior(prior, latents, steps)
    save_checkpoint(model, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a bundled model config with an entropy bottleneck")
    parser.add_argument("out", type=Path, help="the checkpoint to write (.pt)")
    parser.add_argument("--seed", type=int, default=0, help="of the random weights")
    args = parser.parse_args(argv)
    write_fitted(args.config, args.out, args.seed)
    print(f"{args.out}: {args.config}, random weights (seed {args.seed}), the prior fit to their latents")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
