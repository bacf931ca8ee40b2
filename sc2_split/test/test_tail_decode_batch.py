"""A served tail decodes the frames of a batch together (one GPU launch for entropy version 2 on a
CUDA device), and each frame gets what decoding it alone gives: the same latent bit for bit, or the
same refusal; one frame's fault never fails another's. The CUDA case runs where CUDA is (the GPU
machine), the CPU case everywhere."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from sc2_split.codecs.entropy import EntropyCodec
from sc2_split.codecs.payload import PayloadError
from sc2_split.data import sample_frames
from sc2_split.frames import CodedFrame
from sc2_split.models.build import build_detector
from sc2_split.models.config import checkpoint_path, config_path, load_model_config
from sc2_split.models.split import Head, image_geometry
from sc2_split.tail import TailPipeline

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")),
]


@pytest.fixture(scope="module")
def cpu_tail() -> TailPipeline:
    return TailPipeline.from_config("demo_fp", "demo_fp_beta4.5_stage2")


@pytest.fixture(scope="module")
def frames(cpu_tail: TailPipeline) -> list[CodedFrame]:
    """Good frames of entropy versions 2 and 1 and quant8, and malformed ones between them (the head
    is built from the tail's config and checkpoint)."""
    detector = build_detector(
        load_model_config(config_path("demo_fp")), checkpoint_path("demo_fp_beta4.5_stage2")
    )
    geometry = image_geometry(detector, 480, 640)
    head = Head(detector, geometry).eval()
    with torch.inference_mode():
        latents = [head(torch.from_numpy(f.copy())).numpy() for f in sample_frames(480, 640, 4)]
    v2 = cpu_tail.codecs["entropy"]
    assert isinstance(v2, EntropyCodec)
    v1 = EntropyCodec(v2.tables, version=1)
    encoded = [v2.encode(x) for x in latents] + [
        v1.encode(latents[0]),
        cpu_tail.codecs["quant8"].encode(latents[1]),
    ]
    good = [CodedFrame(enc, geometry, cpu_tail.model_id) for enc in encoded]
    words = np.frombuffer(encoded[1].data, np.uint8).copy()
    words[8:24] ^= 0x5A  # lane words of the first lanes
    bad = [
        replace(good[0], model_id="someone_else"),
        replace(good[0], encoded=replace(encoded[0], data=encoded[0].data[: len(encoded[0].data) // 2])),
        replace(good[1], encoded=replace(encoded[1], data=words.tobytes())),
        replace(good[2], encoded=replace(encoded[2], chunk_sizes=(1, 2))),
    ]
    return [good[0], bad[0], good[1], bad[1], good[2], bad[2], good[3], good[4], bad[3], good[5]]


def alone(tail: TailPipeline, frame: CodedFrame) -> np.ndarray | str:
    try:
        return tail.decode(frame)
    except PayloadError as err:
        return err.reason


@pytest.mark.parametrize("device", DEVICES)
def test_a_batch_decodes_each_frame_as_decoding_it_alone(cpu_tail, frames, device):
    tail = (
        cpu_tail
        if device == "cpu"
        else TailPipeline.from_config("demo_fp", "demo_fp_beta4.5_stage2", device=device)
    )
    if device == "cuda":
        assert tail.gpu_decoder is not None
    want = [alone(cpu_tail, f) for f in frames]
    assert sum(isinstance(w, str) for w in want) == 4
    for got, expected in zip(tail.decode_batch(frames), want, strict=True):
        if isinstance(expected, str):
            assert isinstance(got, PayloadError) and got.reason == expected
        else:
            host = got.cpu().numpy() if isinstance(got, torch.Tensor) else got
            assert host.tobytes() == expected.astype(np.float32).tobytes()
