"""The export CLI turns a model into ONNX plus metadata and prints its parity figure; the head then
runs from those files alone, without importing torch, and the tail decodes what it sends."""

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sc2_split.head_metadata import HeadMetadata
from torchvision.transforms.functional import to_tensor

HEIGHT, WIDTH = 96, 128


@pytest.fixture(scope="module")
def exported(small_models: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config, checkpoint = small_models["sc2_resnet50_fp"]
    out = tmp_path_factory.mktemp("export")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sc2_split.export",
            "--config",
            str(config),
            "--checkpoint",
            str(checkpoint),
            "--name",
            "small_fp",
            "--height",
            str(HEIGHT),
            "--width",
            str(WIDTH),
            "--out",
            str(out),
            "--fp16",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    error = float(re.search(r"max abs error: (\S+)", result.stdout).group(1))
    assert error < 1e-3
    assert "trtexec --onnx=" in result.stdout
    return out


def test_export_writes_onnx_and_metadata(exported: Path, small_models: dict) -> None:
    assert (exported / "head.onnx").stat().st_size > 0
    assert (exported / "head_fp16.onnx").stat().st_size > 0
    metadata = HeadMetadata.load(exported / "head.json")
    assert metadata.model_id.startswith("small_fp@")
    assert (metadata.input_height, metadata.input_width) == (HEIGHT, WIDTH)
    assert metadata.codecs == ("entropy", "quant8", "fp16")
    assert (
        metadata.entropy_tables is not None and metadata.entropy_tables.channels == metadata.latent_shape[1]
    )
    assert len(metadata.class_names) == 91


HEAD_SCRIPT = """
import json, pickle, sys
import numpy as np
from sc2_split.backends import make_backend
from sc2_split.head import HeadPipeline
from sc2_split.head_metadata import HeadMetadata
meta_path, onnx_path, frame_path, out_path = sys.argv[1:]
metadata = HeadMetadata.load(meta_path)
backend = make_backend("onnxruntime", meta_path, metadata, model_file_path=onnx_path)
head = HeadPipeline(metadata, backend, "entropy")
result = head(np.load(frame_path))
with open(out_path, "wb") as out:
    pickle.dump(result.encoded, out)
assert result.encoded.version == 2  # rANS lanes, in process
with HeadPipeline(metadata, backend, "entropy", encode_workers=2) as pooled:  # version 1 on processes
    assert len(pooled.encode_pool.pids) == 2
    old = pooled(np.load(frame_path)).encoded
    decode = lambda enc: head.codec.decode(enc, metadata.latent_shape).tobytes()
    assert old.version == 1 and decode(old) == decode(result.encoded)
print(json.dumps({"torch": "torch" in sys.modules, "compressai": "compressai" in sys.modules,
                  "encode_ms": result.encode_ms}))
"""


def test_onnxruntime_head_runs_without_torch_and_the_tail_decodes_it(
    exported: Path, small_models: dict, tmp_path: Path
) -> None:
    from sc2_split.frames import CodedFrame
    from sc2_split.models.build import build_detector, model_id
    from sc2_split.models.config import load_model_config
    from sc2_split.tail import TailPipeline

    frame = np.kron(np.random.default_rng(3).integers(0, 256, (12, 16, 3)), np.ones((8, 8, 1))).astype(
        np.uint8
    )
    np.save(tmp_path / "frame.npy", frame)
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            HEAD_SCRIPT,
            str(exported / "head.json"),
            str(exported / "head.onnx"),
            str(tmp_path / "frame.npy"),
            str(tmp_path / "payload.pickle"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.splitlines()[-1])
    assert report == {"torch": False, "compressai": False, "encode_ms": report["encode_ms"]}

    config, checkpoint = small_models["sc2_resnet50_fp"]
    model = build_detector(load_model_config(config), checkpoint)
    metadata = HeadMetadata.load(exported / "head.json")
    tail = TailPipeline(model, model_id("small_fp", model))
    encoded = pickle.loads((tmp_path / "payload.pickle").read_bytes())
    detections = tail(CodedFrame(encoded, metadata.geometry, metadata.model_id))
    with torch.inference_mode():
        unsplit = model([to_tensor(frame)])[0]
    # ONNX Runtime's latent differs from torch's by ~1e-5, which can move a symbol sitting on a
    # rounding boundary; the strongest detections must still agree.
    assert len(detections.boxes) == len(unsplit["boxes"])
    np.testing.assert_allclose(detections.boxes[:10], unsplit["boxes"][:10].numpy(), atol=1.0)


def test_torch_backend_checks_the_model_id(exported: Path) -> None:
    from sc2_split.backends import make_backend

    metadata = HeadMetadata.load(exported / "head.json")
    backend = make_backend("torch", exported / "head.json", metadata)
    assert backend(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).shape == metadata.latent_shape
    forged = json.loads((exported / "head.json").read_text())
    forged["model_id"] = "small_fp@000000000000"
    (exported / "forged.json").write_text(json.dumps(forged))
    with pytest.raises(ValueError, match="is not the model small_fp@000000000000"):
        make_backend("torch", exported / "forged.json", HeadMetadata.load(exported / "forged.json"))


def test_head_refuses_frames_that_are_not_rgb8(exported: Path) -> None:
    from sc2_split.backends import make_backend
    from sc2_split.head import HeadPipeline

    metadata = HeadMetadata.load(exported / "head.json")
    backend = make_backend(
        "onnxruntime", exported / "head.json", metadata, model_file_path=exported / "head.onnx"
    )
    head = HeadPipeline(metadata, backend, "quant8")
    for bad in (
        np.zeros((HEIGHT, WIDTH), np.uint8),
        np.zeros((HEIGHT, WIDTH, 3), np.float32),
        np.zeros((0, WIDTH, 3), np.uint8),
    ):
        with pytest.raises(ValueError, match="expected a uint8 RGB image"):
            head(bad)
    # Another frame size is resized to the exported one; boxes still refer to this frame.
    result = head(np.zeros((240, 320, 3), np.uint8))
    assert (result.geometry.image_height, result.geometry.image_width) == (240, 320)
    with pytest.raises(ValueError, match="supports codecs"):
        HeadPipeline(metadata, backend, "png")


def test_tensorrt_engine_matches_onnxruntime(exported: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorrt")
    from sc2_split.backends import make_backend
    from sc2_split.export.tensorrt import build_engine

    engine = tmp_path / "head.engine"
    build_engine(
        exported / "head.onnx", engine, fp16=False, workspace_mb=512, timing_cache=tmp_path / "t.cache"
    )
    metadata = HeadMetadata.load(exported / "head.json")
    frame = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    trt_latent = make_backend("tensorrt", exported / "head.json", metadata, engine_file_path=engine)(frame)
    ort_latent = make_backend(
        "onnxruntime", exported / "head.json", metadata, model_file_path=exported / "head.onnx"
    )(frame)
    np.testing.assert_allclose(trt_latent, ort_latent, atol=1e-3)
