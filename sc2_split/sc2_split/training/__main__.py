"""python -m sc2_split.training {teacher,students,finetune,all} --out DIR: trains the demo models.

`all` trains the teacher, then the students from it (SC2 stage 1), then fine-tunes the students of
--finetune-betas (stage 2), and writes DIR/metrics.json beside the checkpoints. Phases stop by the
clock (--teacher-seconds, --student-seconds, --finetune-seconds), so a run on a lent GPU ends when
planned. --quick is a CPU smoke run: one frame a step, one step a phase.
"""

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from sc2_split.training.finetune import finetune_students
from sc2_split.training.settings import Budget, RunSettings
from sc2_split.training.students import evaluate_students, train_students
from sc2_split.training.teacher import TEACHER, train_teacher

log = logging.getLogger("sc2_split.training")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    _log_to(args.out / "train.log")
    run, teacher_budget, student_budget, finetune_budget = _settings(args)
    log.info(
        "run: %s, teacher %s, students %s, betas %s, stage 2 %s, betas %s",
        *(run, teacher_budget, student_budget, args.betas, finetune_budget, args.finetune_betas),
    )
    metrics_path = args.out / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    if args.command in ("teacher", "all"):
        metrics["teacher"] = train_teacher(args.out, teacher_budget, run)
        metrics_path.write_text(json.dumps(metrics, indent=2))
    teacher = args.teacher or args.out / f"{TEACHER}.pt"
    metrics.setdefault("students", {})
    if args.command in ("students", "all"):
        betas = [*args.betas, None]  # None: the 8-bit variant
        trained = train_students(args.out, teacher, betas, student_budget, run)
        _evaluate(args.out, teacher, trained, run, metrics, metrics_path)
    if args.command in ("finetune", "all"):
        trained = finetune_students(
            args.out, teacher, args.finetune_betas, finetune_budget, run, args.finetune_lr, args.resume
        )
        _evaluate(args.out, teacher, trained, run, metrics, metrics_path)
    log.info("metrics: %s", json.dumps(metrics))


def _evaluate(
    out: Path,
    teacher: Path,
    trained: dict[str, dict[str, Any]],
    run: RunSettings,
    metrics: dict[str, Any],
    path: Path,
) -> None:
    """The students' training figures, then each one's evaluation as it comes, into metrics.json."""
    metrics["students"].update(trained)
    path.write_text(json.dumps(metrics, indent=2))
    betas = {name: figures["beta"] for name, figures in trained.items()}
    for name, figures in evaluate_students(out, teacher, betas, run):
        metrics["students"][name].update(figures)
        path.write_text(json.dumps(metrics, indent=2))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sc2_split.training", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("teacher", "students", "finetune", "all"))
    parser.add_argument("--out", type=Path, required=True, help="folder for checkpoints, log, metrics.json")
    parser.add_argument(
        "--quick", action="store_true", help="CPU smoke run: one frame a step, one step a phase"
    )
    parser.add_argument("--teacher", type=Path, help=f"teacher checkpoint for `students` (OUT/{TEACHER}.pt)")
    parser.add_argument(
        "--betas", type=float, nargs="+", default=[3.5, 4.5], help="one entropic student each"
    )
    parser.add_argument(
        "--finetune-betas", type=float, nargs="+", default=[4.5], help="students that get stage 2"
    )
    parser.add_argument("--teacher-seconds", type=float, default=270.0)
    parser.add_argument("--student-seconds", type=float, default=490.0)
    parser.add_argument("--finetune-seconds", type=float, default=450.0)
    parser.add_argument("--finetune-lr", type=float, default=3e-4, help="stage 2's peak learning rate")
    parser.add_argument(
        "--resume", action="store_true", help="stage 2 goes on from OUT/<student>_stage2.pt (2nd sitting)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=min(14, max((os.cpu_count() or 2) - 2, 1)))
    parser.add_argument("--val-frames", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _settings(args: argparse.Namespace) -> tuple[RunSettings, Budget, Budget, Budget]:
    if args.quick:
        run = RunSettings(torch.device("cpu"), batch_size=1, workers=0, val_frames=1, seed=args.seed)
        return run, *[Budget(60.0, max_iterations=1)] * 3
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # every frame has the same size
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    run = RunSettings(device, args.batch_size, args.workers, args.val_frames, args.seed)
    return run, Budget(args.teacher_seconds), Budget(args.student_seconds), Budget(args.finetune_seconds)


def _log_to(path: Path) -> None:
    formatter = logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S")
    for handler in (logging.StreamHandler(), logging.FileHandler(path)):
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.setLevel(logging.INFO)


if __name__ == "__main__":
    main()
