"""python -m sc2_split.export.detector_onnx: a whole detector (the bundled teacher, by default) as one
ONNX graph for a fixed frame size, which the robot's fallback node runs with ONNX Runtime when the
edge is gone. Written at build or test time, not shipped: the fp32 teacher graph is 16 MB.
Prints the ONNX Runtime vs torch parity figure on the sample frames."""

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from sc2_split.data import sample_frames
from sc2_split.export.onnx import OPSET
from sc2_split.models.build import build_detector
from sc2_split.models.config import checkpoint_path, config_path, load_model_config

OUTPUTS = ("boxes", "labels", "scores")


def export_detector(config: str, checkpoint: str, path: Path, height: int = 480, width: int = 640) -> float:
    """Writes the detector's graph, float RGB (3, height, width) in [0, 1] in, torchvision's boxes,
    labels and scores out, and returns the largest box difference from torch on two sample frames."""
    model = build_detector(load_model_config(config_path(config)), checkpoint_path(checkpoint)).eval().float()
    frames = [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in sample_frames(height, width, 2)]
    torch.onnx.export(
        model, ([frames[0]],), str(path), input_names=["image"], output_names=list(OUTPUTS),
        opset_version=OPSET, dynamo=False,
    )  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.inference_mode():
        for frame in frames:
            expected = model([frame])[0]["boxes"].numpy()
            actual = session.run(["boxes"], {"image": frame.numpy()})[0]
            if actual.shape != expected.shape:
                raise RuntimeError(
                    f"ONNX Runtime found {len(actual)} boxes where torch found {len(expected)}"
                )
            worst = max(worst, float(np.abs(actual - expected).max(initial=0.0)))
    return worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sc2_split.export.detector_onnx", description=__doc__)
    p.add_argument("--config", default="demo_teacher", help="model config: a YAML path or a bundled name")
    p.add_argument("--checkpoint", default="demo_teacher", help="a .pt path or a bundled name")
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--out", type=Path, required=True, help="the ONNX file to write")
    args = p.parse_args(argv)
    worst = export_detector(args.config, args.checkpoint, args.out, args.height, args.width)
    print(f"wrote {args.out}; onnxruntime vs torch max box difference: {worst:.2e} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
