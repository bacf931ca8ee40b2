"""Entropy decoding on worker processes (a ChannelPool) gives what decoding in process gives: the same
symbols bit for bit, the same PayloadError for each corrupt payload, the same detections through
the tail; a worker that dies costs one frame a clear error, and the pool goes on."""

import itertools
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from codec_fixtures import escaping_latent, laplace_tables, pool_latents
from hypothesis import given, settings
from hypothesis import strategies as st
from sc2_split.codecs import EncodedTensor, PayloadError
from sc2_split.codecs.channel_pool import ChannelPool, ChannelWorkerError
from sc2_split.codecs.entropy import EntropyCodec
from sc2_split.frames import CodedFrame
from sc2_split.models.build import build_detector, model_id
from sc2_split.models.config import load_model_config
from sc2_split.models.split import Head, image_geometry
from sc2_split.tail import TailPipeline

CHANNELS = 10
TABLES = laplace_tables(CHANNELS, seed=1)
SHAPE = (1, CHANNELS, 12, 16)
IN_PROCESS = EntropyCodec(TABLES, version=1)  # what the pool codes
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


VALID = IN_PROCESS.encode(escaping_latent(TABLES, SHAPE))


@pytest.fixture(scope="module")
def pooled() -> EntropyCodec:
    with ChannelPool(TABLES, 3) as pool:  # channel groups 0-3, 4-6, 7-9
        yield EntropyCodec(TABLES, pool)


def outcome(codec: EntropyCodec, enc: EncodedTensor, shape: tuple[int, ...] = SHAPE) -> tuple:
    """The symbols as bytes, or the PayloadError's reason and message."""
    try:
        return ("decoded", codec.decode_symbols(enc, shape).tobytes())
    except PayloadError as err:
        return ("refused", err.reason, str(err))


def with_chunks(chunks: list[bytes]) -> EncodedTensor:
    return replace(VALID, data=b"".join(chunks), chunk_sizes=tuple(len(c) for c in chunks))


def chunks() -> list[bytes]:
    bounds = np.cumsum((0, *VALID.chunk_sizes))
    return [VALID.data[a:b] for a, b in itertools.pairwise(bounds)]


def test_pooled_decode_equals_in_process_decode_bit_for_bit(pooled: EntropyCodec) -> None:
    latents = pool_latents(TABLES, SHAPE)
    for x in latents:
        enc = IN_PROCESS.encode(x)
        expected = IN_PROCESS.decode(enc, x.shape)
        assert pooled.decode(enc, x.shape).tobytes() == expected.tobytes()
    assert VALID.chunk_sizes[-1] > 0  # the escaped values went through too


def corrupt_payloads() -> dict[str, EncodedTensor]:
    c = chunks()
    sizes = VALID.chunk_sizes
    return {
        "another codec": replace(VALID, codec="quant8"),
        "lying chunk sizes": replace(VALID, chunk_sizes=(*sizes[:-1], sizes[-1] + 1)),
        "not whole words": replace(VALID, chunk_sizes=(sizes[0] + 1, sizes[1] - 1, *sizes[2:])),
        "words left over, first group": with_chunks([b"\x01\0\0\0" + c[0], *c[1:]]),
        "words left over, middle group": with_chunks([*c[:5], b"\x01\0\0\0" + c[5], *c[6:]]),
        "zero word, last channel": with_chunks([*c[:9], b"\0\0\0\0", c[10]]),
        "bad streams in two groups": with_chunks(
            [*c[:2], b"\0\0\0\0", *c[3:8], b"\x01\0\0\0" + c[8], *c[9:]]
        ),
        "missing escaped value": with_chunks([*c[:-1], c[-1][:-1]]),
    }


@pytest.mark.parametrize("name", list(corrupt_payloads()))
def test_pooled_decode_refuses_corrupt_payloads_as_in_process(pooled: EntropyCodec, name: str) -> None:
    enc = corrupt_payloads()[name]
    expected = outcome(IN_PROCESS, enc)
    assert expected[0] == "refused"
    assert outcome(pooled, enc) == expected


@settings(max_examples=60, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 2**20), st.integers(1, 255)), min_size=1, max_size=4))
def test_pooled_decode_of_flipped_bits_matches_in_process(pooled: EntropyCodec, flips: list) -> None:
    data = bytearray(VALID.data)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    enc = replace(VALID, data=bytes(data))
    assert outcome(pooled, enc) == outcome(IN_PROCESS, enc)


def test_a_killed_worker_costs_one_frame_a_clear_error_then_the_pool_goes_on() -> None:
    with ChannelPool(TABLES, 2) as pool:
        codec = EntropyCodec(TABLES, pool)
        assert outcome(codec, VALID) == outcome(IN_PROCESS, VALID)
        killed = pool.pids[1]
        os.kill(killed, signal.SIGKILL)
        with pytest.raises(ChannelWorkerError, match=rf"1 \(pid {killed}, exit code -9\) died.*restarted"):
            codec.decode_symbols(VALID, SHAPE)
        assert pool.restarts == 1 and killed not in pool.pids
        assert outcome(codec, VALID) == outcome(IN_PROCESS, VALID)


def test_a_closed_pool_has_stopped_its_workers_and_refuses_to_decode() -> None:
    pool = ChannelPool(TABLES, 2)
    codec = EntropyCodec(TABLES, pool)
    codec.decode_symbols(VALID, SHAPE)
    pids = pool.pids
    pool.close()
    pool.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(RuntimeError, match="closed"):
        codec.decode_symbols(VALID, SHAPE)


EXIT_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from codec_fixtures import laplace_tables
from sc2_split.codecs.channel_pool import ChannelPool
from sc2_split.codecs.entropy import EntropyCodec
import numpy as np

if __name__ == "__main__":
    tables = laplace_tables(4)
    pool = ChannelPool(tables, 2)
    codec = EntropyCodec(tables, pool)
    x = np.zeros((1, 4, 8, 8), np.float32)
    codec.decode(codec.encode(x), x.shape)
    print(" ".join(str(pid) for pid in pool.pids))
"""


def test_a_pool_left_open_is_stopped_at_interpreter_exit(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    script = tmp_path / "leave_open.py"
    script.write_text(EXIT_SCRIPT)
    run = subprocess.run(
        [sys.executable, str(script), str(Path(__file__).parent)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "leaked" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    for pid in run.stdout.split():
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)


def test_tail_with_decode_workers_gives_the_same_detections(small_models: dict[str, tuple]) -> None:
    config, checkpoint = small_models["sc2_resnet50_fp"]
    model = build_detector(load_model_config(config), checkpoint)
    frame = np.kron(np.random.default_rng(5).integers(0, 256, (12, 16, 3)), np.ones((8, 8, 1))).astype(
        np.uint8
    )
    geometry = image_geometry(model, *frame.shape[:2])
    with torch.inference_mode():
        latent = Head(model, geometry).eval()(torch.from_numpy(frame)).numpy()
    name = model_id("small_fp", model)
    with TailPipeline(model, name) as serial, TailPipeline(model, name, decode_workers=2) as pooled:
        assert serial.decode_pool is None and len(pooled.decode_pool.pids) == 2
        coded = CodedFrame(serial.codecs["entropy"].encode(latent), geometry, name)
        expected, actual = serial(coded), pooled(coded)
    assert len(expected.boxes) > 0
    for field in ("boxes", "scores", "labels"):
        np.testing.assert_array_equal(getattr(actual, field), getattr(expected, field))
