"""Fixtures shared by the tests: the small models, and for the tests that start ROS 2 processes, their
environment, the small model exported as a head, and the test's camera node (split_fixtures.py)."""

from collections.abc import Iterator

import pytest


@pytest.fixture
def ros_env() -> dict[str, str]:
    """Environment for child processes: a DDS domain of their own, discovery kept on this machine."""
    from sc2_split.testing.node_process import isolated_ros_env

    return isolated_ros_env()


SMALL_SIZES = {"min_size": 128, "max_size": 192, "box_score_thresh": 0.0}


@pytest.fixture(scope="session")
def small_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    """The bundled SC2 ResNet-50 configs at a small input size, each with a saved checkpoint.

    Maps a config name to (config path, checkpoint path). Random weights: the tests compare the
    split model with the unsplit one, which needs no training.
    """
    import torch
    import yaml
    from sc2_split.models.build import build_detector, save_checkpoint
    from sc2_split.models.config import bundled_config_path, load_model_config

    out = tmp_path_factory.mktemp("models")
    models = {}
    for name in ("sc2_resnet50_fp", "sc2_resnet50_bq8"):
        document = yaml.safe_load(bundled_config_path(name).read_text())
        document["model"]["kwargs"].update(SMALL_SIZES)
        config = out / f"{name}.yaml"
        config.write_text(yaml.safe_dump(document))
        torch.manual_seed(0)
        checkpoint = out / f"{name}.pt"
        save_checkpoint(build_detector(load_model_config(config)), checkpoint)
        models[name] = (config, checkpoint)
    return models


@pytest.fixture(scope="session")
def exported_head(small_models: dict[str, tuple], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The small FP model exported for the camera's frames, and the parameters that point the nodes at it."""
    from split_fixtures import export_head

    config, checkpoint = small_models["sc2_resnet50_fp"]
    return export_head(str(config), str(checkpoint), str(tmp_path_factory.getbasetemp() / "head"))


@pytest.fixture(scope="session")
def valid(exported_head: dict[str, str]) -> dict:
    """One real Bottleneck message per codec of the exported head, by codec name."""
    from split_fixtures import valid_bottlenecks

    return valid_bottlenecks(exported_head)


@pytest.fixture
def camera(ros_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """The test's camera node (split_fixtures.Camera) in the child processes' DDS domain."""
    from split_fixtures import running_camera

    with running_camera(ros_env, monkeypatch) as camera:
        yield camera


@pytest.fixture(scope="session")
def local_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The bundled teacher exported whole, as the robot's build would write it: the fallback node's
    local detector."""
    from sc2_split.export.detector_onnx import export_detector

    path = tmp_path_factory.mktemp("local") / "detector.onnx"
    assert export_detector("demo_teacher", "demo_teacher", path) < 1e-2
    return str(path)
