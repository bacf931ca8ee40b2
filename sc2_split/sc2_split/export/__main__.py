"""python -m sc2_split.export: a model config (and checkpoint) -> head ONNX (+ fp16, + TensorRT engine)
and the metadata file the head node reads. Prints the ONNX Runtime vs torch parity figure."""

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

from sc2_split.codecs import CODECS
from sc2_split.export.onnx import export_onnx, max_abs_error
from sc2_split.metadata import HeadMetadata
from sc2_split.models.build import build_detector, model_id
from sc2_split.models.config import bundled_config_path, load_class_names, load_model_config
from sc2_split.models.entropy_tables import tables_from_entropy_bottleneck
from sc2_split.models.split import Head, entropy_bottleneck, image_geometry


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
    config_path = Path(args.config) if args.config.endswith(".yaml") else bundled_config_path(args.config)
    name = args.name or config_path.stem
    model = build_detector(load_model_config(config_path), args.checkpoint)
    geometry = image_geometry(model, args.height, args.width)
    head = Head(model, geometry).eval()
    args.out.mkdir(parents=True, exist_ok=True)

    onnx_path = args.out / "head.onnx"
    export_onnx(head, onnx_path)
    rng = np.random.default_rng(0)
    frames = [
        rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8) for _ in range(args.parity_frames)
    ]
    print(
        f"wrote {onnx_path}; onnxruntime vs torch max abs error: {max_abs_error(head, onnx_path, frames):.3g}"
    )
    if args.fp16:
        half_path = args.out / "head_fp16.onnx"
        export_onnx(head, half_path, half=True)
        print(f"wrote {half_path} (float16 compute, float32 latent)")

    with torch.inference_mode():
        latent_shape = tuple(head(torch.from_numpy(frames[0])).shape)
    eb = entropy_bottleneck(model)
    metadata = HeadMetadata(
        model_id=model_id(name, model),
        input_height=args.height,
        input_width=args.width,
        geometry=geometry,
        image_mean=tuple(model.transform.image_mean),
        image_std=tuple(model.transform.image_std),
        latent_shape=latent_shape,
        codecs=tuple(c for c in CODECS if c != "entropy" or eb is not None),
        class_names=load_class_names(config_path),
        entropy_tables=None if eb is None else tables_from_entropy_bottleneck(eb),
        model_config=os.path.relpath(config_path.resolve(), args.out.resolve()),
        checkpoint=os.path.relpath(args.checkpoint.resolve(), args.out.resolve()) if args.checkpoint else "",
    )
    metadata_path = args.out / "head.json"
    metadata.save(metadata_path)
    print(
        f"wrote {metadata_path}: model {metadata.model_id}, latent {latent_shape}, codecs {metadata.codecs}"
    )

    engine_source = args.out / ("head_fp16.onnx" if args.fp16 else "head.onnx")
    engine_path, cache_path = args.out / "head.engine", args.out / "timing.cache"
    if args.engine:
        from sc2_split.export.tensorrt import build_engine

        build_engine(engine_source, engine_path, args.fp16, args.workspace_mb, cache_path)
        print(f"wrote {engine_path}")
    print("TensorRT engine with trtexec (on the robot):")
    print("  " + trtexec_command(engine_source, engine_path, args.fp16, args.workspace_mb, cache_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
