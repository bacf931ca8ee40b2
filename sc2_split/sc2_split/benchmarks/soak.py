"""python -m sc2_split.benchmarks.soak: the head and tail nodes under a steady camera for minutes.

Prints the resident memory of both node processes and its growth after warm-up (testing/soak.py
runs the nodes and samples them), and fails when it grows past --max-growth.
"""

import argparse
import os
import sys
from pathlib import Path

from sc2_split.codecs import CODECS
from sc2_split.data import sample_frames
from sc2_split.export.head_files import export_head
from sc2_split.models.build import build_detector, save_checkpoint
from sc2_split.models.config import checkpoint_path, config_path, load_model_config
from sc2_split.testing.node_process import isolated_ros_env
from sc2_split.testing.soak import growth_percent, run_soak


def exported_model(
    config_name: str, checkpoint_name: str, height: int, width: int, out: Path
) -> tuple[dict[str, object], dict[str, object]]:
    """Node parameters (head, tail) for a model other than the shipped one, its head exported to `out`
    for height x width frames."""
    config = config_path(config_name).resolve()
    checkpoint = checkpoint_path(checkpoint_name)
    model = build_detector(load_model_config(config), checkpoint)
    if checkpoint is None:  # the tail must load the very weights the head was exported from
        out.mkdir(parents=True, exist_ok=True)
        checkpoint = out / "random.pt"
        save_checkpoint(model, checkpoint)
    files = export_head(model, config.stem, config, checkpoint, height, width, out)
    head = {"metadata_file_path": files.metadata_path, "model_file_path": files.onnx_path}
    return head, {"model_config": config, "checkpoint": checkpoint.resolve()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sc2_split.benchmarks.soak", description=__doc__)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=10.0, help="camera frames per second")
    p.add_argument(
        "--config",
        default="",
        help="bundled config name or YAML path; empty: the model of the shipped parameter files",
    )
    p.add_argument("--checkpoint", default="", help="with --config: weights (.pt); empty: random weights")
    p.add_argument("--height", type=int, default=480, help="camera frame height")
    p.add_argument("--width", type=int, default=640, help="camera frame width")
    p.add_argument("--codec", default="entropy", choices=CODECS)
    p.add_argument("--sample-period", type=float, default=5.0, help="seconds between RSS samples")
    p.add_argument("--max-growth", type=float, default=5.0, help="RSS growth (%%) that fails the run")
    p.add_argument("--out", type=Path, default=Path("out/soak"), help="node logs")
    args = p.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    head_params, tail_params = {}, {}
    if args.config:
        head_params, tail_params = exported_model(
            args.config, args.checkpoint, args.height, args.width, args.out / "model"
        )
    env = isolated_ros_env()
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = env["ROS_AUTOMATIC_DISCOVERY_RANGE"]
    model = args.config or "the shipped model"
    print(f"soak: {model}, {args.rate:g} Hz for {args.minutes:g} min; node logs in {args.out}")
    report = run_soak(
        head_params | {"codec": args.codec},
        tail_params,
        sample_frames(args.height, args.width, 8),
        args.rate,
        60.0 * args.minutes,
        env,
        args.out,
        args.sample_period,
    )
    print(report.summary())
    worst = max(growth_percent(samples) for samples in report.rss_mb.values())
    print(f"largest RSS growth after warm-up: {worst:+.2f}% (limit {args.max_growth:g}%)")
    return 0 if worst < args.max_growth else 1


if __name__ == "__main__":
    sys.exit(main())
