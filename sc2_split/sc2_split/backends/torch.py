"""Torch backend: the head as a torch module, for development and for edge machines that have torch."""

from pathlib import Path

import numpy as np
import torch

from sc2_split.backends import check_frame
from sc2_split.head_metadata import HeadMetadata
from sc2_split.models.build import build_detector, model_id
from sc2_split.models.config import load_model_config
from sc2_split.models.split import Head


class TorchBackend:
    name = "torch"

    def __init__(self, metadata_path: str | Path, metadata: HeadMetadata, device: str = "cpu") -> None:
        here = Path(metadata_path).parent
        config = here / metadata.model_config
        checkpoint = here / metadata.checkpoint if metadata.checkpoint else None
        model = build_detector(load_model_config(config), checkpoint)
        name = metadata.model_id.split("@")[0]
        if model_id(name, model) != metadata.model_id:
            raise ValueError(
                f"{config} with {checkpoint} is not the model {metadata.model_id} of {metadata_path}"
            )
        self.metadata = metadata
        self.device = torch.device(device)
        self.head = Head(model, metadata.geometry).to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, image: np.ndarray) -> np.ndarray:
        frame = torch.from_numpy(check_frame(image, self.metadata)).to(self.device)
        return self.head(frame).cpu().numpy()
