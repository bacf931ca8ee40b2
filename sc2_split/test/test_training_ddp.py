"""`torchrun --nproc-per-node 2` (gloo, CPU) trains the same students as one process with the same
global batch, and a phase bounded by the clock ends on every rank at the same step (no hang).

Tolerances: the 8-bit student is deterministic, so the runs differ only in the order of
floating-point sums (DDP averages the gradients of two half batches): its per-epoch distortion
agrees within 1e-6 relative and most weights within 1e-6; Adam turns a near-zero gradient whose sign
the sum order flips into a full step, so a few weights differ by up to 2 x lr per step. The
entropic student adds random quantization noise (drawn per process), so its figures agree within
1e-3 relative.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from coco_fixtures import write_tiny_coco
from sc2_split.bundled import DEMO_DIR
from sc2_split.models.config import bundled_config_path

_STEPS, _LR = 8, 1e-3 * 2 / 16  # two epochs of 4 global batches of 2; lr scaled from batch 16
_STUDENTS = ("demo_fp_beta1.28", "demo_bq8")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Arguments both runs share: 8 images, the bundled demo teacher at the tiny folder's size."""
    folder = tmp_path_factory.mktemp("ddp_data")
    ids = tuple(range(1, 7))  # the demo teacher's classes
    train = write_tiny_coco(folder, "train", 8, category_ids=ids)
    val = write_tiny_coco(folder, "val", 2, start=50, category_ids=ids)
    teacher_config = folder / "small_teacher.yaml"
    text = bundled_config_path("demo_teacher").read_text()
    teacher_config.write_text(
        text.replace("min_size: 480", "min_size: 128").replace("max_size: 640", "max_size: 160")
    )
    return [
        "--cpu", "--workers", "0", "--train-data", str(train), "--val-data", str(val),
        "--teacher-config", str(teacher_config), "--teacher", str(DEMO_DIR / "demo_teacher.pt"),
        "--betas", "1.28", "--finetune-betas", "1.28", "--augmentation", "hflip",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def runs(inputs: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Stage 1 for two epochs and stage 2 for 3 s: two processes of batch 1, one of batch 2."""
    out = tmp_path_factory.mktemp("ddp_runs")
    torchrun = shutil.which("torchrun") or pytest.fail("torchrun not on PATH")
    phases = ["all", *inputs, "--student-epochs", "2", "--finetune-seconds", "3"]
    _train([torchrun, "--standalone", "--nproc-per-node", "2"], [*phases, "--batch-size", "1"], out / "ddp")
    _train([sys.executable], [*phases, "--batch-size", "2"], out / "one")
    return {"ddp": out / "ddp", "one": out / "one"}


def _train(launcher: list[str], args: list[str], out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [*launcher, "-m", "sc2_split.training", *args, "--out", str(out)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _history(out: Path) -> list[dict[str, float]]:
    return torch.load(out / "students.state.pt", weights_only=False)["history"]


def test_two_processes_train_what_one_does_with_the_same_global_batch(runs: dict[str, Path]) -> None:
    one, ddp = _history(runs["one"]), _history(runs["ddp"])
    assert len(one) == len(ddp) == 2
    for a, b in zip(one, ddp, strict=True):
        assert a["demo_bq8/distortion"] == pytest.approx(b["demo_bq8/distortion"], rel=1e-6)
        for kind in ("distortion", "bits"):
            assert a[f"demo_fp_beta1.28/{kind}"] == pytest.approx(b[f"demo_fp_beta1.28/{kind}"], rel=1e-3)
    weights = {
        run: torch.load(runs[run] / "demo_bq8.pt", weights_only=True)["model"] for run in ("one", "ddp")
    }
    keys = [k for k, v in weights["one"].items() if v.is_floating_point()]
    difference = torch.cat([(weights["one"][k] - weights["ddp"][k]).abs().flatten() for k in keys])
    print(f"8-bit student, 1 x 2 vs 2 x 1: {(difference <= 1e-6).float().mean():.1%} of weights within 1e-6")
    assert (difference <= 1e-6).float().mean() >= 0.85
    assert difference.max() <= 2 * _LR * _STEPS


def test_both_report_the_effective_batch_and_stop_every_rank_by_the_clock(runs: dict[str, Path]) -> None:
    for out in runs.values():
        state = torch.load(out / "students.state.pt", weights_only=False)
        assert (state["iteration"], state["images"]) == (_STEPS, 2 * _STEPS)
        log = (out / "train.log").read_text()
        assert "effective batch 2" in log and f"lr {_LR:.3g}" in log
        for name in _STUDENTS:
            assert (out / f"{name}.pt").is_file()
        assert (out / "demo_fp_beta1.28_stage2.pt").is_file()  # stage 2 ended by the clock


def test_resume_goes_on_from_the_last_epoch(runs: dict[str, Path], inputs: list[str], tmp_path: Path) -> None:
    shutil.copytree(runs["one"], tmp_path, dirs_exist_ok=True)
    _train(
        [sys.executable],
        ["students", *inputs, "--student-epochs", "3", "--batch-size", "2", "--resume"],
        tmp_path,
    )
    state = torch.load(tmp_path / "students.state.pt", weights_only=False)
    assert [row["epoch"] for row in state["history"]] == [0, 1, 2] and state["iteration"] == _STEPS + 4
    assert state["history"][:2] == _history(runs["one"])
    assert "resumed from" in (tmp_path / "train.log").read_text()
