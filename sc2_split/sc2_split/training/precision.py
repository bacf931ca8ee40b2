"""Mixed precision on GPUs (bfloat16 autocast, so no loss scaling), float32 on CPUs; the robot's
head (encoder and entropy bottleneck) always in float32, as it runs on the robot, so that the
quantized latent a tail learns from is the one it will receive."""

from typing import Any

import torch
from torch import nn


def autocast(device: torch.device, enabled: bool = True) -> torch.autocast:
    return torch.autocast(device.type, torch.bfloat16, enabled=enabled and device.type == "cuda")


def keep_float32(module: nn.Module) -> None:
    """The module computes in float32 even inside autocast."""
    forward = module.forward

    def float32_forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast(x.device.type, enabled=False):
            return forward(x.float(), *args, **kwargs)

    module.forward = float32_forward
