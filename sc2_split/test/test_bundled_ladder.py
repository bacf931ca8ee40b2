"""The shipped rate ladder (config/rate_ladder.yaml) is one the head can run: it loads, its figures are
the measured ones (docs/rate_accuracy.json), and each point's bundled head is there, runs on ONNX
Runtime, and carries the model id of the student it names, so that a tail serving that student
accepts its bottlenecks."""

import json
from pathlib import Path

import pytest
import yaml
from ament_index_python.packages import get_package_share_directory
from sc2_split.backends import make_backend
from sc2_split.control.operating_points import from_rate_accuracy, load_ladder_file
from sc2_split.data import sample_frames
from sc2_split.head import HeadPipeline
from sc2_split.head_metadata import HeadMetadata
from sc2_split.models.build import build_detector, model_id
from sc2_split.models.config import checkpoint_path, config_path, load_model_config

PACKAGE = Path(__file__).resolve().parents[1]
LADDER_FILE = PACKAGE / "config" / "rate_ladder.yaml"
RATE_ACCURACY = PACKAGE.parent / "docs" / "rate_accuracy.json"
POINTS = load_ladder_file(LADDER_FILE)


def test_the_shipped_ladder_is_installed_and_keeps_every_point() -> None:
    installed = Path(get_package_share_directory("sc2_split")) / "config" / LADDER_FILE.name
    assert installed.read_text() == LADDER_FILE.read_text()
    # ladder() leaves out a point another beats: a shipped ladder lists none such.
    assert len(POINTS) == len(yaml.safe_load(LADDER_FILE.read_text())["operating_points"]) == 3


def test_the_shipped_figures_are_the_measured_ones() -> None:
    measured = from_rate_accuracy(json.loads(RATE_ACCURACY.read_text()), [p.name for p in POINTS])
    assert [m.name for m in measured] == [p.name for p in POINTS]
    for point, m in zip(POINTS, measured, strict=True):
        assert point.codec == m.codec == "entropy"
        assert point.bytes_per_frame == pytest.approx(m.bytes_per_frame, abs=0.5), point.name
        assert point.accuracy == pytest.approx(m.accuracy, abs=5e-4), point.name


@pytest.mark.parametrize("point", POINTS, ids=lambda p: p.name)
def test_each_point_has_a_head_of_its_student(point) -> None:
    metadata = HeadMetadata.load(point.metadata_file_path)
    assert point.codec in metadata.codecs
    assert (Path(point.metadata_file_path).parent / "head.onnx").is_file()
    config = config_path("demo_fp")
    tail = build_detector(load_model_config(config), checkpoint_path(point.name))
    assert metadata.model_id == model_id(config.stem, tail)


def test_the_heads_run_and_lower_points_send_fewer_bytes() -> None:
    frames = sample_frames(480, 640, 4)
    sizes = []
    for point in POINTS:
        metadata = HeadMetadata.load(point.metadata_file_path)
        backend = make_backend("onnxruntime", point.metadata_file_path, metadata)
        with HeadPipeline(metadata, backend, point.codec) as head:
            sizes.append(sum(len(head(f).encoded.data) for f in frames) / len(frames))
    print("\nbytes per sample frame:", dict(zip([p.name for p in POINTS], sizes, strict=True)))
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < sizes[0] / 2


def test_the_shipped_weights_stay_within_25_mb() -> None:
    """Checkpoints and exported heads, the bundled ladder's heads included (issue 16's budget)."""
    demo = PACKAGE / "sc2_split" / "models" / "demo"
    files = [*demo.glob("*.pt"), *demo.rglob("*.onnx")]
    assert len([f for f in files if f.suffix == ".onnx"]) == len(POINTS)
    assert sum(f.stat().st_size for f in files) <= 25e6
