"""Models come from sc2bench configs; checkpoints in the torchdistill layout load back exactly,
and every way a config or checkpoint can be wrong is a clear error."""

from pathlib import Path

import pytest
import torch
import yaml
from sc2_split.models.build import build_detector, load_checkpoint, model_id, save_checkpoint
from sc2_split.models.config import bundled_config_path, load_class_names, load_model_config
from sc2_split.models.split import entropy_bottleneck


def test_checkpoint_round_trip_restores_weights_and_entropy_tables(
    small_models: dict, tmp_path: Path
) -> None:
    config, checkpoint = small_models["sc2_resnet50_fp"]
    original = build_detector(load_model_config(config), checkpoint)
    reloaded = build_detector(load_model_config(config), checkpoint)
    assert model_id("m", original) == model_id("m", reloaded)
    a, b = entropy_bottleneck(original), entropy_bottleneck(reloaded)
    assert a._quantized_cdf.numel() > 0
    assert torch.equal(a._quantized_cdf, b._quantized_cdf)
    assert torch.equal(a._offset, b._offset)


def test_a_fresh_build_has_other_weights_and_another_model_id(small_models: dict) -> None:
    config, checkpoint = small_models["sc2_resnet50_fp"]
    assert model_id("m", build_detector(load_model_config(config))) != model_id(
        "m", build_detector(load_model_config(config), checkpoint)
    )


def test_sc2bench_training_config_with_student_model_entry_loads(tmp_path: Path) -> None:
    document = yaml.safe_load(bundled_config_path("sc2_resnet50_fp").read_text())
    training = {
        "datasets": {},
        "models": {"teacher_model": {"key": "x", "kwargs": {}}, "student_model": document["model"]},
        "train": {},
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(training))
    assert load_model_config(path) == document["model"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["model"].update(name=d["model"].pop("key")), r"key`/`kwargs"),
        (lambda d: d["model"]["kwargs"].update(pretrained=True), "pretrained"),
        (lambda d: d["model"]["kwargs"]["backbone_config"]["kwargs"].update(pretrained=True), "pretrained"),
        (lambda d: d.pop("model"), "no model entry"),
    ],
)
def test_bad_configs_are_refused_with_a_reason(tmp_path: Path, edit, message: str) -> None:
    document = yaml.safe_load(bundled_config_path("sc2_resnet50_fp").read_text())
    edit(document)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ValueError, match=message):
        build_detector(load_model_config(path))


def test_missing_files_are_named() -> None:
    with pytest.raises(FileNotFoundError, match=r"nothere\.yaml"):
        load_model_config("/nothere.yaml")
    with pytest.raises(FileNotFoundError, match="no bundled model config named 'nope'"):
        bundled_config_path("nope")
    model = build_detector(load_model_config(bundled_config_path("sc2_resnet50_bq8")))
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        load_checkpoint(model, "/missing.pt")


def test_checkpoint_of_another_model_is_refused(small_models: dict) -> None:
    fp_config, _ = small_models["sc2_resnet50_fp"]
    _, bq_checkpoint = small_models["sc2_resnet50_bq8"]
    with pytest.raises(ValueError, match="does not fit this model config"):
        build_detector(load_model_config(fp_config), bq_checkpoint)


def test_something_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt"
    torch.save({"model": [1, 2, 3]}, path)
    model = build_detector(load_model_config(bundled_config_path("sc2_resnet50_bq8")))
    with pytest.raises(ValueError, match="not a checkpoint"):
        load_checkpoint(model, path)


def test_a_bare_state_dict_loads_too(small_models: dict, tmp_path: Path) -> None:
    config, checkpoint = small_models["sc2_resnet50_bq8"]
    model = build_detector(load_model_config(config), checkpoint)
    bare = tmp_path / "bare.pt"
    torch.save(model.state_dict(), bare)
    assert model_id("m", build_detector(load_model_config(config), bare)) == model_id("m", model)
    save_checkpoint(model, tmp_path / "again.pt", epoch=3)
    assert torch.load(tmp_path / "again.pt", weights_only=True)["epoch"] == 3


def test_coco_class_names_come_from_torchvision() -> None:
    names = load_class_names(bundled_config_path("sc2_resnet50_fp"))
    assert len(names) == 91 and names[0] == "__background__" and names[1] == "person"
