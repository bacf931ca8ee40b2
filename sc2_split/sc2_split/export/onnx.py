"""The head as an ONNX graph with a fixed frame size, checked against torch with ONNX Runtime."""

import copy
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from sc2_split.models.split import Head

OPSET = 17


def export_onnx(
    head: Head, path: Path, half: bool = False, input_name: str = "image", output_name: str = "latent"
) -> None:
    g = head.geometry
    module = copy.deepcopy(head).half() if half else head
    frame = torch.zeros((g.image_height, g.image_width, 3), dtype=torch.uint8)
    torch.onnx.export(
        module.eval(),
        (frame,),
        str(path),
        input_names=[input_name],
        output_names=[output_name],
        opset_version=OPSET,
        dynamo=False,
    )


def max_abs_error(
    head: Head, path: Path, frames: list[np.ndarray], provider: str = "CPUExecutionProvider"
) -> float:
    """Largest difference between ONNX Runtime's latent and torch's (fp32) over `frames`."""
    session = ort.InferenceSession(str(path), providers=[provider])
    input_name = session.get_inputs()[0].name
    worst = 0.0
    with torch.inference_mode():
        for frame in frames:
            expected = head(torch.from_numpy(frame)).numpy()
            (actual,) = session.run(None, {input_name: frame})
            worst = max(worst, float(np.abs(actual - expected).max()))
    return worst
