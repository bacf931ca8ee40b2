"""The SC2 recipe on a user's COCO-format data with a torchvision teacher (CPU, one step a stage):
what it writes is what the tail and the export CLI take unchanged."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from coco_fixtures import HEIGHT, WIDTH, class_names, same_size_frame, write_tiny_coco
from sc2_split.data.augmentation import Augmentation
from sc2_split.data.coco import CocoDetection
from sc2_split.data.synthetic import frame, write_split
from sc2_split.export.__main__ import main as export_main
from sc2_split.models.build import start_checkpoint_keys
from sc2_split.models.config import load_model_config
from sc2_split.training.__main__ import main as train_main

STUDENT = "sc2_resnet50_fp_beta0.08"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("coco")
    return {"train": write_tiny_coco(folder, "train", 4), "val": write_tiny_coco(folder, "val", 2, start=50)}


@pytest.fixture(scope="module")
def trained(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision Faster R-CNN ResNet-50 FPN as the user's teacher (random weights saved as a
    .pth), then one step of stage 1 and one of stage 2 for SC2's published student config."""
    from torchvision.models import get_model

    out = tmp_path_factory.mktemp("trained")
    torch.manual_seed(0)
    teacher = get_model("fasterrcnn_resnet50_fpn", weights=None, weights_backbone=None, num_classes=9)
    torch.save(teacher.state_dict(), out / "teacher.pth")
    kwargs = json.dumps({"min_size": 128, "max_size": 160, "box_score_thresh": 0.0})
    data_args = ["--train-data", str(data["train"]), "--val-data", str(data["val"])]
    teacher_args = ["--teacher-arch", "fasterrcnn_resnet50_fpn", "--teacher", str(out / "teacher.pth")]
    student_args = ["--student-config", "sc2_resnet50_fp", "--quantized-configs", "--betas", "0.08"]
    stages = ["all", "--quick", "--out", str(out), "--teacher-kwargs", kwargs, "--finetune-betas", "0.08"]
    train_main([*stages, *data_args, *teacher_args, *student_args])
    return out


def test_each_stage_takes_a_step_and_is_evaluated(trained: Path) -> None:
    metrics = json.loads((trained / "metrics.json").read_text())
    assert set(metrics["students"]) == {STUDENT, f"{STUDENT}_stage2"}
    for figures in metrics["students"].values():
        assert figures["iterations"] == 1 and figures["effective_batch"] == 1
        assert 0.0 <= figures["map"] <= 1.0 and figures["bytes_per_frame"] > 0
    assert "teacher" not in metrics  # given, not trained
    for phase in ("students", "stage2"):
        assert (trained / f"{phase}_curves.png").stat().st_size > 0
        state = torch.load(trained / f"{phase}.state.pt", weights_only=False)
        assert state["iteration"] == 1 and len(state["history"]) == 1
    assert "effective batch 1" in (trained / "train.log").read_text()


def test_the_student_config_takes_the_teachers_weights_classes_and_sizes(trained: Path) -> None:
    config_file = trained / "sc2_resnet50_fp.yaml"
    config = load_model_config(config_file)
    assert Path(config["kwargs"]["start_ckpt_file_path"]) == (trained / "teacher.pth").resolve()
    assert (config["kwargs"]["num_classes"], config["kwargs"]["min_size"]) == (9, 128)
    saved = torch.load(trained / f"{STUDENT}.pt", weights_only=True)["model"]
    assert saved and not set(saved) & start_checkpoint_keys(config)  # the tail is the teacher's


def test_the_tail_and_the_export_cli_take_the_outputs_unchanged(trained: Path) -> None:
    from sc2_split.backends import make_backend
    from sc2_split.frames import CodedFrame
    from sc2_split.head import HeadPipeline
    from sc2_split.head_metadata import HeadMetadata
    from sc2_split.tail import TailPipeline

    config, checkpoint = trained / "sc2_resnet50_fp.yaml", trained / f"{STUDENT}_stage2.pt"
    head_dir = trained / "head"
    argv = ["--config", str(config), "--checkpoint", str(checkpoint), "--out", str(head_dir)]
    assert export_main([*argv, "--height", str(HEIGHT), "--width", str(WIDTH), "--parity-frames", "1"]) == 0
    metadata = HeadMetadata.load(head_dir / "head.json")
    assert list(metadata.class_names) == class_names()
    backend = make_backend(
        "onnxruntime", head_dir / "head.json", metadata, model_file_path=head_dir / "head.onnx"
    )
    sent = HeadPipeline(metadata, backend, "entropy")(same_size_frame())
    with TailPipeline.from_config(str(config), str(checkpoint)) as tail:
        detections = tail(CodedFrame(sent.encoded, sent.geometry, metadata.model_id))
    assert detections.boxes.shape[1:] == (4,) and len(detections.boxes) > 0  # score threshold 0
    assert ((detections.boxes[:, 2] <= WIDTH + 1e-3) & (detections.boxes[:, 3] <= HEIGHT + 1e-3)).all()


def test_procedural_frames_written_to_disk_read_back_as_a_coco_source(tmp_path: Path) -> None:
    dataset = CocoDetection(write_split(tmp_path, "val", 2))
    for index in range(2):
        image, target = dataset[index]
        expected, wanted = frame("val", index)
        assert torch.equal(image, torch.from_numpy(expected).permute(2, 0, 1))
        np.testing.assert_array_equal(target["boxes"], wanted["boxes"])
        np.testing.assert_array_equal(target["labels"], wanted["labels"])


def test_augmentation_flips_boxes_with_the_image_and_repeats_per_key(tmp_path: Path) -> None:
    dataset = CocoDetection(write_tiny_coco(tmp_path, "a", 1))
    image, target = dataset[0]
    flip = Augmentation("hflip", seed=0)
    outcomes = [flip(image, target, key=(0, k)) for k in range(8)]
    flipped = [k for k, (i, _) in enumerate(outcomes) if not torch.equal(i, image)]
    assert 0 < len(flipped) < 8  # p = 0.5
    out_image, out = outcomes[flipped[0]]
    assert torch.equal(out_image, image.flip(-1))
    np.testing.assert_allclose(out["boxes"][:, [2, 0]], WIDTH - target["boxes"][:, [0, 2]])
    assert torch.equal(flip(image, target, key=(0, flipped[0]))[0], out_image)
    ssd = Augmentation("ssd", seed=0)
    for k in range(4):
        crop, boxes = ssd(image, target, key=(1, k))
        h, w = crop.shape[-2:]
        assert crop.dtype == torch.uint8 and len(boxes["boxes"]) == len(boxes["labels"])
        assert (
            (boxes["boxes"] >= 0).all()
            and (boxes["boxes"][:, 2] <= w).all()
            and (boxes["boxes"][:, 3] <= h).all()
        )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("categories"), "needs `images`, `annotations` and `categories`"),
        (lambda d: d["annotations"][0].update(category_id=99), "unknown category_id 99"),
        (lambda d: d["images"][0].update(file_name="missing.png"), "not found"),
        (lambda d: d["annotations"][0].pop("bbox"), "malformed COCO instances JSON"),
    ],
)
def test_malformed_coco_files_are_refused_with_a_reason(tmp_path: Path, edit, message: str) -> None:
    path = write_tiny_coco(tmp_path, "bad", 1)
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        CocoDetection(path)
