"""Entropy encoding on worker processes (a ChannelPool) sends the bytes encoding in process sends, so
a tail decodes them either way; a worker that dies costs one frame a clear error, and the pool goes
on; a closed pool refuses."""

import os
import signal

import numpy as np
import pytest
from codec_fixtures import escaping_latent, laplace_tables, pool_latents
from sc2_split.codecs.channel_pool import ChannelPool, ChannelWorkerError
from sc2_split.codecs.entropy import EntropyCodec

CHANNELS = 10
TABLES = laplace_tables(CHANNELS, seed=2)
SHAPE = (1, CHANNELS, 12, 16)
IN_PROCESS = EntropyCodec(TABLES, version=1)  # what the pool codes
LATENT = escaping_latent(TABLES, SHAPE)


@pytest.fixture(scope="module")
def pooled() -> EntropyCodec:
    with ChannelPool(TABLES, 3) as pool:  # channel groups 0-3, 4-6, 7-9
        yield EntropyCodec(TABLES, pool)


def test_pooled_encode_sends_the_bytes_of_in_process_encode(pooled: EntropyCodec) -> None:
    latents = pool_latents(TABLES, SHAPE)
    for x in latents:
        expected = IN_PROCESS.encode(x)
        assert pooled.encode(x) == expected
    assert IN_PROCESS.encode(latents[1]).chunk_sizes[-1] > 0  # the escaped values went through too


def test_pooled_encode_round_trips_through_either_decoder(pooled: EntropyCodec) -> None:
    x = escaping_latent(TABLES, (2, CHANNELS, 9, 7), seed=5)
    enc = pooled.encode(x)
    expected = IN_PROCESS.decode(IN_PROCESS.encode(x), x.shape)
    assert IN_PROCESS.decode(enc, x.shape).tobytes() == expected.tobytes()
    assert pooled.decode(enc, x.shape).tobytes() == expected.tobytes()


def test_pooled_encode_refuses_a_latent_without_int32_symbols_as_in_process_encode_does(
    pooled: EntropyCodec,
) -> None:
    x = LATENT.copy()
    x[0, -1, 0, 0] = np.nan  # in the last channel group
    for codec in (IN_PROCESS, pooled):
        with pytest.raises(ValueError, match="NaN, infinite or huge"):
            codec.encode(x)
    assert pooled.encode(LATENT) == IN_PROCESS.encode(LATENT)  # the pool goes on


def test_a_killed_worker_costs_one_frame_a_clear_error_then_the_pool_goes_on() -> None:
    with ChannelPool(TABLES, 2) as pool:
        codec = EntropyCodec(TABLES, pool)
        killed = pool.pids[0]
        os.kill(killed, signal.SIGKILL)
        with pytest.raises(
            ChannelWorkerError, match=rf"0 \(pid {killed}, exit code -9\) died while encoding"
        ):
            codec.encode(LATENT)
        assert pool.restarts == 1 and killed not in pool.pids
        assert codec.encode(LATENT) == IN_PROCESS.encode(LATENT)


def test_a_closed_pool_refuses_to_encode() -> None:
    pool = ChannelPool(TABLES, 1)
    codec = EntropyCodec(TABLES, pool)
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        codec.encode(LATENT)
