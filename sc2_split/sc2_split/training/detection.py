"""Detectors trained with torchvision's detection loss, side by side on the same batches: the teacher
from scratch, and the students' decoders and tails in stage 2 (whatever requires grad learns)."""

from typing import Any

from torch import Tensor, nn
from torch.optim import AdamW

from sc2_split.training.distributed import unwrap
from sc2_split.training.precision import autocast
from sc2_split.training.settings import RunSettings
from sc2_split.training.sources import detection_targets

_WEIGHT_DECAY, _CLIP_NORM = 1e-4, 10.0


class DetectionLearner:
    """The engine's Learner for detection-loss phases; `lr` is the rate for this run's batch."""

    def __init__(self, models: dict[str, nn.Module], lr: float, run: RunSettings) -> None:
        self.device, self.lr = run.device, lr
        self.models = {name: run.world.wrap(model) for name, model in models.items()}
        self.optimizers = {
            name: AdamW(_trainable(model), lr=lr, weight_decay=_WEIGHT_DECAY)
            for name, model in models.items()
        }

    def step(
        self, images: list[Tensor], targets: list[dict[str, Any]], lr_factor: float
    ) -> dict[str, Tensor]:
        inputs = [image.to(self.device, non_blocking=True).float().div_(255) for image in images]
        wanted = detection_targets(targets, self.device)
        figures = {}
        for name, model in self.models.items():
            optimizer = self.optimizers[name]
            for group in optimizer.param_groups:
                group["lr"] = self.lr * lr_factor
            with autocast(self.device):
                loss = sum(model(inputs, wanted).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(_trainable(model), _CLIP_NORM)
            optimizer.step()
            figures[f"{name}/loss"] = loss.detach()
        return figures

    def state_dict(self) -> dict[str, Any]:
        return {
            name: {"model": unwrap(model).state_dict(), "optimizer": self.optimizers[name].state_dict()}
            for name, model in self.models.items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, model in self.models.items():
            unwrap(model).load_state_dict(state[name]["model"])
            self.optimizers[name].load_state_dict(state[name]["optimizer"])


def _trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
