"""python -m sc2_split.training {teacher,students,finetune,all} --out DIR: the SC2 recipe on one
process, or on N with `torchrun --nproc-per-node N -m sc2_split.training ...` (DDP: NCCL on GPUs,
gloo on CPUs; bfloat16 mixed precision on GPUs for the detection loss, --stage1-amp for stage 1).

`teacher` trains --teacher-config with the detection loss; `students` distils entropic students of
--student-config (one per --betas) and the 8-bit --quantized-configs from the teacher (SC2 stage 1);
`finetune` gives the students of --finetune-betas stage 2; `all` runs them in turn (the teacher only
when --teacher is not given). The teacher is --teacher-config with the checkpoint --teacher
(default OUT/<config>.pt), or a torchvision detector: --teacher-arch fasterrcnn_resnet50_fpn
--teacher weights.pth. Data: COCO-format instances files (--train-data, --val-data; images beside
them or in --train-images / --val-images), or without them the procedural frames generated on the
fly, as the demo trains. Phases stop by the clock (--*-seconds), after --*-epochs, whichever comes
first. --batch-size is per process; learning rates are given for a batch of 16 and scaled linearly
with the effective batch. Writes checkpoints, student configs, metrics.json, train.log, per-epoch
plots (<phase>_curves.png) and resumable states (<phase>.state.pt, --resume).
--quick is a CPU smoke run: one image a step, one step a phase.
"""

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from sc2_split.data.augmentation import AUGMENTATIONS, Augmentation
from sc2_split.data.coco import CocoDetection
from sc2_split.models.config import config_path
from sc2_split.training.distributed import World, close_world, init_world
from sc2_split.training.finetune import finetune_students
from sc2_split.training.settings import Budget, RunSettings
from sc2_split.training.sources import CocoSource, Source, SyntheticSource
from sc2_split.training.students import (
    BQ8_CONFIG,
    FP_CONFIG,
    Student,
    evaluate_students,
    train_students,
    write_student_configs,
)
from sc2_split.training.teacher import TEACHER, TeacherSpec, parse_kwargs, train_teacher

# The procedural stream: teacher, students and stage 2 each see frames the others did not.
_FIRST_FRAME = {"teacher": 0, "students": 10**8, "stage2": 2 * 10**8}

log = logging.getLogger("sc2_split.training")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    world = init_world(cpu=args.quick or args.cpu)
    try:
        _run(args, world)
    finally:
        close_world()


def _run(args: argparse.Namespace, world: World) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    _log_to(args.out / "train.log", world.main)
    run, budgets = _settings(args, world)
    sources = _sources(args, run)
    log.info("run: %s, budgets %s, betas %s, stage 2 betas %s", run, budgets, args.betas, args.finetune_betas)
    metrics_path = args.out / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    metrics.setdefault("students", {})

    def save() -> None:
        if world.main:
            metrics_path.write_text(json.dumps(metrics, indent=2))

    teacher_config = config_path(args.teacher_config)
    if args.command == "teacher" or (args.command == "all" and args.teacher is None):
        metrics["teacher"] = train_teacher(
            args.out, teacher_config, sources["teacher"], sources["val"], budgets["teacher"], run, args.resume
        )
        save()
    teacher = TeacherSpec(
        weights=(args.teacher or args.out / f"{teacher_config.stem}.pt").resolve(),
        config=None if args.teacher_arch else teacher_config,
        arch=args.teacher_arch,
        kwargs=parse_kwargs(args.teacher_kwargs),
    )
    students = [Student(config_path(args.student_config), beta) for beta in args.betas]
    students += [Student(config_path(name), None) for name in args.quantized_configs]
    train = sources["train"]
    class_names = train.dataset.class_names() if isinstance(train, CocoSource) else None
    if args.command in ("students", "all"):
        trained = train_students(
            args.out,
            teacher,
            students,
            sources["students"],
            budgets["students"],
            run,
            class_names,
            args.resume,
        )
        _evaluate(args.out, {s.name: s for s in students}, trained, sources["val"], run, metrics, save)
    if args.command in ("finetune", "all"):
        chosen = [Student(config_path(args.student_config), beta) for beta in args.finetune_betas]
        unwritten = [s for s in chosen if not s.written_config(args.out).is_file()]
        if unwritten and world.main:  # stage 1 ran elsewhere, e.g. the bundled students
            write_student_configs(args.out, teacher, teacher.load(), unwritten, class_names)
        world.barrier()
        trained = finetune_students(
            args.out, chosen, sources["stage2"], budgets["stage2"], run, args.finetune_lr, args.resume
        )
        by_name = {f"{s.name}_stage2": s for s in chosen}
        _evaluate(args.out, by_name, trained, sources["val"], run, metrics, save)
    if world.main:
        log.info("metrics: %s", json.dumps(metrics))


def _evaluate(
    out: Path,
    students: dict[str, Student],
    trained: dict[str, dict[str, Any]],
    val: Source,
    run: RunSettings,
    metrics: dict[str, Any],
    save: Any,
) -> None:
    """The students' training figures, then (on the main process) each one's evaluation as it
    comes, into metrics.json; the other processes wait."""
    metrics["students"].update(trained)
    save()
    if run.world.main:
        configs = {name: students[name].written_config(out) for name in trained}
        for name, figures in evaluate_students(out, configs, val, run):
            metrics["students"][name].update(figures)
            save()
    run.world.barrier()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sc2_split.training", description=__doc__.split("\n")[0])
    p.add_argument("command", choices=("teacher", "students", "finetune", "all"))
    p.add_argument(
        "--out", type=Path, required=True, help="folder for checkpoints, configs, log, metrics, plots"
    )
    p.add_argument("--quick", action="store_true", help="CPU smoke run: one image a step, one step a phase")
    p.add_argument(
        "--cpu", action="store_true", help="train on CPUs even where a GPU is (gloo under torchrun)"
    )
    data = p.add_argument_group("data (default: procedural frames generated on the fly)")
    data.add_argument("--train-data", type=Path, help="COCO instances JSON for training")
    data.add_argument("--train-images", type=Path, help="its image folder (default: the JSON's folder)")
    data.add_argument("--val-data", type=Path, help="COCO instances JSON for evaluation")
    data.add_argument("--val-images", type=Path, help="its image folder (default: the JSON's folder)")
    data.add_argument(
        "--augmentation",
        choices=AUGMENTATIONS,
        help="as torchvision's references (default: hflip; procedural: none)",
    )
    data.add_argument("--epoch-frames", type=int, default=4096, help="procedural frames per epoch")
    data.add_argument("--val-frames", type=int, default=128, help="procedural frames to evaluate on")
    models = p.add_argument_group("models")
    models.add_argument("--teacher-config", default=TEACHER, help="teacher config: bundled name or YAML")
    models.add_argument(
        "--teacher", type=Path, help="trained teacher's weights (default OUT/<teacher config>.pt)"
    )
    models.add_argument(
        "--teacher-arch", help="a torchvision detector by name instead, e.g. fasterrcnn_resnet50_fpn"
    )
    models.add_argument("--teacher-kwargs", default="{}", help="JSON keyword arguments of its builder")
    models.add_argument(
        "--student-config", default=FP_CONFIG, help="entropic student config (sc2_resnet50_fp: SC2's)"
    )
    models.add_argument(
        "--quantized-configs",
        nargs="*",
        default=[BQ8_CONFIG],
        help="8-bit student configs, one student each (none: the option alone); e.g. demo_bq8 demo_bq1",
    )
    models.add_argument(
        "--betas", type=float, nargs="+", default=[3.5, 4.5], help="one entropic student each"
    )
    models.add_argument(
        "--finetune-betas", type=float, nargs="+", default=[4.5], help="students that get stage 2"
    )
    budget = p.add_argument_group("budgets and schedule")
    for phase, seconds in (("teacher", 270.0), ("student", 490.0), ("finetune", 450.0)):
        budget.add_argument(f"--{phase}-seconds", type=float, default=seconds)
        budget.add_argument(f"--{phase}-epochs", type=float, help="stop after this many epochs")
    budget.add_argument("--finetune-lr", type=float, default=3e-4, help="stage 2's peak learning rate")
    budget.add_argument(
        "--resume",
        action="store_true",
        help="go on from OUT/<phase>.state.pt (budgets are the phase's totals); without one, stage 2 "
        "starts from OUT/<student>_stage2.pt with a fresh schedule (a second sitting)",
    )
    budget.add_argument("--batch-size", type=int, default=16, help="images per process and step")
    budget.add_argument("--workers", type=int, help="DataLoader processes per training process")
    budget.add_argument("--seed", type=int, default=0)
    budget.add_argument("--stage1-amp", action="store_true", help="stage 1 in bfloat16 autocast too (GPUs)")
    return p


def _settings(args: argparse.Namespace, world: World) -> tuple[RunSettings, dict[str, Budget]]:
    if args.quick:
        run = RunSettings(world, batch_size=1, workers=0, val_frames=1, seed=args.seed)
        return run, dict.fromkeys(("teacher", "students", "stage2"), Budget(60.0, max_iterations=1))
    if world.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # every frame has the same size
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    per_host = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    workers = args.workers
    if workers is None:
        workers = max(min(14, (os.cpu_count() or 2) - 2) // per_host, 1)
    run = RunSettings(world, args.batch_size, workers, args.val_frames, args.seed, args.stage1_amp)
    budgets = {
        "teacher": Budget(args.teacher_seconds, epochs=args.teacher_epochs),
        "students": Budget(args.student_seconds, epochs=args.student_epochs),
        "stage2": Budget(args.finetune_seconds, epochs=args.finetune_epochs),
    }
    return run, budgets


def _sources(args: argparse.Namespace, run: RunSettings) -> dict[str, Source]:
    """The training source of each phase and the validation source."""
    if args.train_data is None:
        frames = args.epoch_frames if not args.quick else 1
        augmentation = args.augmentation or "none"
        if augmentation != "none":
            raise ValueError(
                "the procedural stream is not augmented; write frames to a COCO folder for that "
                "(python -m sc2_split.data.synthetic --out DIR) and train with --train-data"
            )
        phases: dict[str, Source] = {
            phase: SyntheticSource("train", frames, args.seed, start) for phase, start in _FIRST_FRAME.items()
        }
        return {
            **phases,
            "train": phases["students"],
            "val": SyntheticSource("val", run.val_frames, args.seed),
        }
    augmentation = Augmentation(args.augmentation or "hflip", args.seed)
    train = CocoSource(CocoDetection(args.train_data, args.train_images, augmentation, skip_empty=True))
    if args.val_data is None:
        raise ValueError("--train-data needs --val-data (the COCO instances file to evaluate on)")
    val = CocoSource(CocoDetection(args.val_data, args.val_images))
    return {"teacher": train, "students": train, "stage2": train, "train": train, "val": val}


def _log_to(path: Path, main: bool) -> None:
    """The main process logs to the console and the file; the others only warnings."""
    formatter = logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S")
    handlers = [logging.StreamHandler(), logging.FileHandler(path)] if main else [logging.StreamHandler()]
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.setLevel(logging.INFO if main else logging.WARNING)


if __name__ == "__main__":
    main()
