"""The robot's half on its own runtime: the bundled exported head (head.onnx, head.json) on ONNX
Runtime turns camera frames of any size into payloads that every shipped codec decodes back to a
latent of the model's shape, refuses what is not an RGB frame, and never imports torch. No torch
and no ROS here: one of the robot side's tests (Python 3.10 too)."""

import subprocess
import sys

import numpy as np
import pytest
from sc2_split.backends import make_backend
from sc2_split.bundled import BUNDLED_HEAD
from sc2_split.codecs import make_codec
from sc2_split.data import sample_frames
from sc2_split.head import HeadPipeline
from sc2_split.head_metadata import HeadMetadata

METADATA = HeadMetadata.load(BUNDLED_HEAD)


@pytest.fixture(scope="module", name="backend")
def backend_fixture():
    return make_backend("onnxruntime", BUNDLED_HEAD, METADATA)


@pytest.mark.parametrize("codec", METADATA.codecs)
@pytest.mark.parametrize("size", [(480, 640), (720, 1280), (1080, 1920)], ids=lambda s: f"{s[1]}x{s[0]}")
def test_frames_of_any_size_become_payloads_the_codec_decodes(backend, codec: str, size: tuple) -> None:
    height, width = size
    with HeadPipeline(METADATA, backend, codec) as head:
        frame = sample_frames(height, width, 1)[0]
        result = head(frame)
    assert (result.geometry.image_height, result.geometry.image_width) == (height, width)
    latent = make_codec(codec, METADATA.entropy_tables).decode(result.encoded, METADATA.latent_shape)
    assert latent.shape == tuple(METADATA.latent_shape) and np.isfinite(latent).all()
    # A real frame gives a latent with structure, not a constant.
    assert latent.std() > 0


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((480, 640), np.uint8),
        np.zeros((480, 640, 4), np.uint8),
        np.zeros((480, 640, 3), np.float32),
        np.zeros((0, 640, 3), np.uint8),
    ],
    ids=["mono", "rgba", "float", "empty"],
)
def test_head_refuses_what_is_not_an_rgb_frame(backend, image: np.ndarray) -> None:
    with HeadPipeline(METADATA, backend, "entropy") as head, pytest.raises(ValueError, match="uint8 RGB"):
        head(image)


def test_head_on_onnxruntime_imports_no_torch() -> None:
    script = (
        "import sys\n"
        "from sc2_split.backends import make_backend\n"
        "from sc2_split.head import HeadPipeline\n"
        "from sc2_split.bundled import BUNDLED_HEAD\n"
        "from sc2_split.head_metadata import HeadMetadata\n"
        "from sc2_split.data import sample_frames\n"
        "m = HeadMetadata.load(BUNDLED_HEAD)\n"
        "head = HeadPipeline(m, make_backend('onnxruntime', BUNDLED_HEAD, m), 'entropy')\n"
        "head(sample_frames(480, 640, 1)[0])\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('torch', 'torchvision', 'compressai')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
