"""python -m sc2_split.export: a model config (and checkpoint) -> head ONNX (+ fp16, + TensorRT engine)
and the metadata file the head node reads. Prints the ONNX Runtime vs torch parity figure."""

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sc2_split.export.head_files import export_head
from sc2_split.export.onnx import max_abs_error
from sc2_split.models.build import build_detector
from sc2_split.models.config import config_path, load_model_config


def trtexec_command(
    onnx_path: Path, engine_path: Path, fp16: bool, workspace_mb: int, timing_cache: Path
) -> str:
    """The same build with NVIDIA's trtexec, for machines where the Python builder is not at hand."""
    parts = [
        "trtexec",
        f"--onnx={onnx_path}",
        f"--saveEngine={engine_path}",
        f"--memPoolSize=workspace:{workspace_mb}M",
        f"--timingCacheFile={timing_cache}",
    ]
    if fp16:
        parts.append("--fp16")
    return " ".join(parts)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sc2_split.export", description=__doc__)
    p.add_argument("--config", required=True, help="model config: a YAML path or a bundled name")
    p.add_argument("--checkpoint", type=Path, help="torchdistill/sc2bench checkpoint (.pt)")
    p.add_argument("--name", help="model name in the model id (default: the config's file name)")
    p.add_argument("--height", type=int, default=480, help="camera frame height the head takes")
    p.add_argument("--width", type=int, default=640, help="camera frame width the head takes")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--fp16", action="store_true", help="also export a float16 graph (head_fp16.onnx)")
    p.add_argument("--engine", action="store_true", help="build a TensorRT engine (needs tensorrt)")
    p.add_argument("--workspace-mb", type=int, default=1024, help="TensorRT builder workspace limit")
    p.add_argument("--parity-frames", type=int, default=2, help="random frames for the parity check")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = config_path(args.config)
    name = args.name or config.stem
    # Stages, for the progress bar: a ResNet-50 student takes a while to build and to trace.
    bar = tqdm(total=4 if args.engine else 3, desc="export", unit="stage", disable=None)
    bar.set_postfix_str("building the model")
    model = build_detector(load_model_config(config), args.checkpoint)
    bar.update()
    bar.set_postfix_str("ONNX export")
    files = export_head(model, name, config, args.checkpoint, args.height, args.width, args.out, args.fp16)
    bar.update()
    bar.set_postfix_str("parity check")
    rng = np.random.default_rng(0)
    shape = (args.height, args.width, 3)
    frames = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(args.parity_frames)]
    error = max_abs_error(files.head, files.onnx_path, frames)
    bar.update()
    print(f"wrote {files.onnx_path}; onnxruntime vs torch max abs error: {error:.3g}")
    if files.onnx_fp16_path:
        print(f"wrote {files.onnx_fp16_path} (float16 compute, float32 latent)")
    m = files.metadata
    print(f"wrote {files.metadata_path}: model {m.model_id}, latent {m.latent_shape}, codecs {m.codecs}")

    engine_source = files.onnx_fp16_path or files.onnx_path
    engine_path, cache_path = args.out / "head.engine", args.out / "timing.cache"
    if args.engine:
        from sc2_split.export.tensorrt import build_engine

        bar.set_postfix_str("TensorRT engine")
        build_engine(engine_source, engine_path, args.fp16, args.workspace_mb, cache_path)
        bar.update()
        print(f"wrote {engine_path}")
    bar.close()
    print("TensorRT engine with trtexec (on the robot):")
    print("  " + trtexec_command(engine_source, engine_path, args.fp16, args.workspace_mb, cache_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
