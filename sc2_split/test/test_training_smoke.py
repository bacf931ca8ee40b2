"""The whole training recipe runs end to end (CPU, one step a phase) on reproducible frames, and
what it writes is what the project ships: checkpoints that build_detector loads, students holding
what the teacher lacks."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sc2_split.data.synthetic import CLASS_NAMES, frame, write_samples
from sc2_split.models.build import build_detector, create_detector, start_checkpoint_keys
from sc2_split.models.config import bundled_config_path, load_model_config
from sc2_split.training.__main__ import main
from sc2_split.training.finetune import HEAD_PREFIXES, finetuned_name
from sc2_split.training.students import Student


def student_name(beta: float | None) -> str:
    return Student(bundled_config_path("demo_bq8" if beta is None else "demo_fp"), beta).name


def student_config(beta: float | None, out: Path) -> dict:
    """The config the run wrote for the tail and the export tool."""
    return load_model_config(out / ("demo_bq8.yaml" if beta is None else "demo_fp.yaml"))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("training")
    main(["all", "--quick", "--out", str(out), "--betas", "0.08", "1.28", "--finetune-betas", "1.28"])
    return out


def _detect(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    image, _ = frame("test", 0)
    with torch.no_grad():
        return model([torch.from_numpy(image).permute(2, 0, 1).float().div(255)])[0]


def _assert_detections(output: dict[str, torch.Tensor]) -> None:
    n = output["boxes"].shape[0]
    assert output["boxes"].shape == (n, 4)
    assert output["scores"].shape == output["labels"].shape == (n,)
    assert bool(((output["labels"] >= 1) & (output["labels"] <= len(CLASS_NAMES))).all())


def test_teacher_checkpoint_loads_and_detects(quick_run: Path) -> None:
    teacher = build_detector(
        load_model_config(bundled_config_path("demo_teacher")), quick_run / "demo_teacher.pt"
    )
    _assert_detections(_detect(teacher))


@pytest.mark.parametrize("beta", [0.08, 1.28, None])
def test_student_checkpoints_hold_only_the_bottleneck_and_detect(quick_run: Path, beta: float | None) -> None:
    config = student_config(beta, quick_run)
    path = quick_run / f"{student_name(beta)}.pt"
    saved = torch.load(path, weights_only=True)["model"]
    bottleneck = {key for key in saved if key.startswith("backbone.body.bottleneck_layer.")}
    # Besides the bottleneck only batch-norm step counters, which the teacher's frozen batch norm lacks.
    assert bottleneck and all(key.endswith(".num_batches_tracked") for key in set(saved) - bottleneck)
    assert not set(saved) & start_checkpoint_keys(config)
    _assert_detections(_detect(build_detector(config, path)))


def test_stage2_checkpoint_keeps_the_head_bit_for_bit_and_stores_its_tail_in_fp16(quick_run: Path) -> None:
    stage1 = torch.load(quick_run / "demo_fp_beta1.28.pt", weights_only=True)["model"]
    path = quick_run / f"{finetuned_name(student_name(1.28))}.pt"
    stage2 = torch.load(path, weights_only=True)["model"]
    head = {key for key in stage2 if key.startswith(HEAD_PREFIXES)}
    assert head and all(torch.equal(stage2[key], stage1[key]) for key in head)
    tail = [value for key, value in stage2.items() if key not in head and value.is_floating_point()]
    assert tail and all(value.dtype == torch.float16 for value in tail)
    config = student_config(1.28, quick_run)
    assert set(stage2) >= set(create_detector(config).state_dict())  # the whole student, teacher not needed
    _assert_detections(_detect(build_detector(config, path)))


def test_metrics_name_every_model_with_map_and_rate(quick_run: Path) -> None:
    metrics = json.loads((quick_run / "metrics.json").read_text())
    assert {"map", "map_50"} <= set(metrics["teacher"])
    assert set(metrics["students"]) == {
        "demo_fp_beta0.08",
        "demo_fp_beta1.28",
        "demo_bq8",
        "demo_fp_beta1.28_stage2",
    }
    for figures in metrics["students"].values():
        assert figures["bytes_per_frame"] > 0
        assert 0.0 <= figures["map"] <= 1.0


def test_frames_are_deterministic_with_boxes_inside_and_coco_annotations(tmp_path: Path) -> None:
    image, target = frame("val", 3)
    again, same = frame("val", 3)
    assert image.shape == (480, 640, 3) and np.array_equal(image, again)
    assert np.array_equal(target["boxes"], same["boxes"])
    assert not np.array_equal(image, frame("test", 3)[0])
    boxes = target["boxes"]
    assert (
        len(boxes) >= 1
        and (boxes[:, :2] >= 0).all()
        and (boxes[:, 2] <= 640).all()
        and (boxes[:, 3] <= 480).all()
    )
    assert ((target["labels"] >= 1) & (target["labels"] <= len(CLASS_NAMES))).all()
    document = json.loads(write_samples(tmp_path, 2, max_png_bytes=10**9).read_text())
    assert [image["file_name"] for image in document["images"]] == ["test_000000.png", "test_000001.png"]
    assert all((tmp_path / image["file_name"]).is_file() for image in document["images"])
    assert {a["category_id"] for a in document["annotations"]} <= set(range(1, len(CLASS_NAMES) + 1))
