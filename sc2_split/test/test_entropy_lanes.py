"""Entropy version 2 (rANS lanes): the symbols of version 1, bit for bit, in about its bytes; every
malformed payload a PayloadError; and the GPU decoder (tests skipped without CUDA) decodes exactly
what the CPU reference decoder decodes, frame by frame in a batch of good and corrupt frames."""

from dataclasses import replace

import numpy as np
import pytest
from codec_fixtures import escaping_latent, lanes_mutations, laplace_tables, reference_symbols
from sc2_split.codecs import PayloadError, rans
from sc2_split.codecs import lanes as lane_format
from sc2_split.codecs.entropy import EntropyCodec

TABLES = laplace_tables(12, seed=3)
SHAPE = (1, 12, 24, 40)
FUZZ_ROUNDS = 12


def codec(lane_size: int | None = None, version: int = 2, tables=TABLES) -> EntropyCodec:
    c = EntropyCodec(tables, version=version)
    if lane_size is not None:
        c.lane_size = lane_size
    return c


def huge_latent(tables, shape, seed: int) -> np.ndarray:
    """Escapes of every size: near the tables, far, and at the edge of compressai's int32 symbols."""
    x = escaping_latent(tables, shape, seed)
    flat = x.reshape(-1)
    rng = np.random.default_rng(seed)
    at = rng.choice(flat.size, min(flat.size, 40), replace=False)
    flat[at] = rng.choice([2.1e9, -2.1e9, 2**31 - 256.0, -(2**31) + 256.0, 1e6, -1e6, 17.0, -17.0], len(at))
    return x


@pytest.mark.parametrize("lane_size", [64, 256, 65536])
@pytest.mark.parametrize(
    "seed,shape", [(0, SHAPE), (1, (2, 12, 5, 7)), (2, (1, 12, 1, 1)), (3, (3, 12, 9, 13))]
)
def test_lanes_round_trip_exactly_with_escapes_of_every_size(lane_size, seed, shape):
    c = codec(lane_size)
    x = huge_latent(TABLES, shape, seed)
    enc = c.encode(x)
    assert (enc.version, enc.chunk_sizes[:2]) == (2, (lane_size, -(-x.size // lane_size)))
    assert sum(enc.chunk_sizes[2:]) == len(enc.data)  # the words, then the lane table
    symbols = c.decode_symbols(enc, shape)
    assert np.array_equal(symbols, reference_symbols(x, TABLES))
    v1 = codec(version=1)
    assert c.decode(enc, shape).tobytes() == v1.decode(v1.encode(x), shape).tobytes()


@pytest.mark.parametrize("seed", range(4))
def test_lanes_round_trip_with_random_tables(seed):
    tables = laplace_tables(int(np.random.default_rng(seed).integers(1, 40)), seed=100 + seed)
    shape = (1, tables.channels, 11, 17)
    x = huge_latent(tables, shape, seed)
    c = codec(tables=tables)
    assert np.array_equal(c.decode_symbols(c.encode(x), shape), reference_symbols(x, tables))


def test_both_versions_decode_with_one_codec():
    x = escaping_latent(TABLES, SHAPE)
    v1, v2 = codec(version=1), codec()
    assert np.array_equal(v2.decode_symbols(v1.encode(x), SHAPE), v1.decode_symbols(v2.encode(x), SHAPE))


def test_an_unknown_version_is_refused_naming_both():
    enc = replace(codec().encode(escaping_latent(TABLES, SHAPE)), version=3)
    with pytest.raises(PayloadError, match=r"version 3.*1 \(per-channel streams\) and 2 \(lanes\)") as err:
        codec().decode(enc, SHAPE)
    assert err.value.reason == "version"


def test_the_encoder_refuses_values_without_an_int32_symbol():
    for bad in (np.nan, np.inf, 3e9):
        x = escaping_latent(TABLES, SHAPE)
        x[0, 3, 2, 2] = bad
        with pytest.raises(ValueError, match="int32"):
            codec().encode(x)


def test_lane_size_follows_the_tables_rate():
    assert lane_format.lane_size_for(3.0) == 512  # 192 bytes a lane
    assert lane_format.lane_size_for(0.15) == 8192  # 154 bytes
    assert lane_format.lane_size_for(0.01) == 65536  # capped
    assert lane_format.lane_size_for(100.0) == 64


@pytest.mark.parametrize("name", sorted(lanes_mutations()))
def test_malformed_lanes_are_payload_errors(name):
    mutate = lanes_mutations()[name]
    c = codec(256)
    valid = c.encode(escaping_latent(TABLES, SHAPE))
    rng = np.random.default_rng(7)
    refused = 0
    for _ in range(FUZZ_ROUNDS):
        try:
            c.decode(mutate(valid, rng), SHAPE)
        except PayloadError:
            refused += 1
    # A flip in the bypass bits of an escaped value changes that value and nothing else.
    assert refused == FUZZ_ROUNDS or (name == "flipped words" and refused >= FUZZ_ROUNDS - 2)


def reason_and_message(decode, enc) -> tuple[str, str]:
    with pytest.raises(PayloadError) as err:
        decode(enc, SHAPE)
    return err.value.reason, str(err.value)


def cuts(enc) -> list:
    """The payload cut at its end, inside its lane table, at the table's start, inside its words, and
    to nothing."""
    words_bytes = enc.chunk_sizes[2]
    ends = [len(enc.data) - 1, words_bytes + 1, words_bytes, words_bytes // 2, 1, 0]
    return [replace(enc, data=enc.data[:end]) for end in ends]


@pytest.mark.parametrize("decode", ["decode", "lane_layout"])
def test_a_cut_payload_is_truncated_and_a_padded_one_oversized(decode):
    """Told by the sizes of the header, before the lane table is read: lane_layout is the GPU
    decoder's check."""
    c = codec(256)
    valid = c.encode(escaping_latent(TABLES, SHAPE))
    for cut in cuts(valid):
        reason, message = reason_and_message(getattr(c, decode), cut)
        assert reason == "truncated", message
        assert f"is {len(cut.data)} bytes, expected {len(valid.data)}" in message
    for padded in (valid.data + b"\0", valid.data + bytes(64), b"\0\0" + valid.data):
        assert reason_and_message(getattr(c, decode), replace(valid, data=padded))[0] == "oversized"


@pytest.mark.parametrize("count", [0, 1, 3, 5, 6])
def test_a_header_with_another_number_of_chunk_sizes_is_refused_naming_the_four(count):
    c = codec(256)
    valid = c.encode(escaping_latent(TABLES, SHAPE))
    sizes = (*valid.chunk_sizes, 0, 0)[:count]
    reason, message = reason_and_message(c.decode, replace(valid, chunk_sizes=sizes))
    assert reason == "header"
    assert f"has {count} chunk sizes, expected 4 (lane size, lane count, words bytes, lane table bytes)" in (
        message
    )


def test_words_bytes_that_the_lane_table_does_not_add_up_to_are_refused():
    c = codec(256)
    valid = c.encode(escaping_latent(TABLES, SHAPE))
    size, lanes, words_bytes, table_bytes = valid.chunk_sizes
    longer = replace(
        valid,
        data=valid.data[:words_bytes] + b"\0\0" + valid.data[words_bytes:],
        chunk_sizes=(size, lanes, words_bytes + 2, table_bytes),
    )
    reason, message = reason_and_message(c.decode, longer)
    assert reason == "corrupt"
    assert f"({words_bytes} bytes), but the header declares {words_bytes + 2} bytes of words" in message
    for impossible in (words_bytes + 1, 0, 2**32 - 1):
        odd = replace(valid, chunk_sizes=(size, lanes, impossible, table_bytes))
        reason, message = reason_and_message(c.decode, odd)
        assert reason == "header" and f"lane words of {impossible} bytes" in message, message


@pytest.fixture(scope="module")
def demo() -> tuple[EntropyCodec, EntropyCodec, list[np.ndarray]]:
    """Both versions with the bundled demo student's tables, and its latents of 8 of its test frames."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("skimage", reason="the procedural test frames' backgrounds")
    from sc2_split.data.synthetic import frame
    from sc2_split.models.build import build_detector
    from sc2_split.models.config import bundled_config_path, checkpoint_path, load_model_config
    from sc2_split.models.entropy_tables import tables_from_entropy_bottleneck
    from sc2_split.models.split import Head, entropy_bottleneck, image_geometry

    model = build_detector(
        load_model_config(bundled_config_path("demo_fp")), checkpoint_path("demo_fp_beta4.5_stage2")
    ).eval()
    tables = tables_from_entropy_bottleneck(entropy_bottleneck(model))
    with torch.inference_mode():
        head = Head(model, image_geometry(model, 480, 640)).eval()
        latents = [head(torch.from_numpy(frame("test", i)[0])).numpy() for i in range(8)]
    return EntropyCodec(tables, version=1), EntropyCodec(tables), latents


def test_lanes_cost_at_most_3_percent_more_bytes_than_version_1_on_the_demo_student(demo):
    v1, v2, latents = demo
    old = sum(v1.encode(x).nbytes for x in latents)
    new = sum(v2.encode(x).nbytes for x in latents)
    print(
        f"demo student, {len(latents)} test frames: version 1 {old / len(latents):.0f} B, version 2 "
        f"{new / len(latents):.0f} B per frame ({new / old - 1:+.2%}), lanes of {v2.lane_size}"
    )
    assert new <= 1.03 * old


def test_lanes_decode_version_1s_symbols_on_the_demo_student(demo):
    v1, v2, latents = demo
    for x in latents:
        assert np.array_equal(
            v2.decode_symbols(v2.encode(x), x.shape), v1.decode_symbols(v1.encode(x), x.shape)
        )


@pytest.mark.parametrize("seed", range(4))
def test_search_buckets_bracket_every_slot(seed):
    """Each slot's bucket starts the search at entries lo, hi with cdf[lo] <= slot < cdf[hi], so that
    it finds the entry a search of the whole table finds."""
    tables = laplace_tables(6, seed)
    buckets = rans.search_buckets(tables.quantized_cdf, tables.cdf_length, tables.precision)
    slots = np.arange(1 << tables.precision)
    shift = tables.precision - rans.BUCKET_BITS
    for channel, (row, length) in enumerate(zip(tables.quantized_cdf, tables.cdf_length, strict=True)):
        lo, hi = buckets[channel, slots >> shift].T
        assert (row[lo] <= slots).all() and (slots < row[hi]).all() and (hi <= length - 1).all()
        entry = np.searchsorted(row[:length], slots, side="right") - 1
        assert ((lo <= entry) & (entry < hi)).all()


# The GPU decoder: CUDA, or numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, slow: small cases).


def gpu():
    cuda = pytest.importorskip("numba.cuda")
    if not cuda.is_available():
        pytest.skip("no CUDA device")
    from sc2_split.codecs.lanes_cuda import GpuLanesDecoder

    return cuda, GpuLanesDecoder


def gpu_decode(tables, payloads, shape):
    """Each payload's latent from the GPU decoder (all in one launch), or its PayloadError."""
    cuda, decoder_class = gpu()
    c = codec(tables=tables)
    results: list = [None] * len(payloads)
    layouts, where = [], []
    for i, enc in enumerate(payloads):
        try:
            layouts.append(c.lane_layout(enc, shape))
            where.append(i)
        except PayloadError as err:
            results[i] = err
    size = int(np.prod(shape))
    out = cuda.to_device(np.full(max(1, len(layouts)) * size, np.nan, np.float32))
    errors = decoder_class(tables).decode_into(layouts, shape, out)
    latents = out.copy_to_host()
    for k, (i, error) in enumerate(zip(where, errors, strict=True)):
        results[i] = error if error is not None else latents[k * size : (k + 1) * size].reshape(shape)
    return results


def cpu_decode(tables, payloads, shape):
    c = codec(tables=tables)
    results = []
    for enc in payloads:
        try:
            results.append(c.decode(enc, shape))
        except PayloadError as err:
            results.append(err)
    return results


def assert_same(cpu_results, gpu_results):
    for i, (a, b) in enumerate(zip(cpu_results, gpu_results, strict=True)):
        if isinstance(a, PayloadError):
            assert isinstance(b, PayloadError), f"frame {i}: the CPU refused it ({a}), the GPU decoded it"
        else:
            assert isinstance(b, np.ndarray), f"frame {i}: the GPU refused it ({b}), the CPU decoded it"
            assert a.tobytes() == b.tobytes(), f"frame {i}: the decoders differ"


@pytest.mark.parametrize("lane_size", [64, 1024])
def test_gpu_decodes_the_cpu_decoders_latents_bit_for_bit(lane_size):
    shapes = [(1, 12, 6, 10), (2, 12, 3, 5)]
    for seed, shape in enumerate(shapes):
        c = codec(lane_size)
        payloads = [c.encode(huge_latent(TABLES, shape, seed + 10 * k)) for k in range(3)]
        cpu = cpu_decode(TABLES, payloads, shape)
        assert_same(cpu, gpu_decode(TABLES, payloads, shape))
        assert all(isinstance(r, np.ndarray) for r in cpu)


def test_gpu_batch_of_good_and_corrupt_frames_refuses_only_the_corrupt():
    shape = (1, 12, 6, 10)
    c = codec(64)
    mutations = lanes_mutations()
    good = [c.encode(huge_latent(TABLES, shape, seed)) for seed in range(6)]
    rng = np.random.default_rng(1)
    corrupt = {1: "impossible state", 2: "extra lane word", 4: "random words"}
    payloads = [mutations[corrupt[i]](enc, rng) if i in corrupt else enc for i, enc in enumerate(good)]
    results = gpu_decode(TABLES, payloads, shape)
    assert [i for i, r in enumerate(results) if isinstance(r, PayloadError)] == sorted(corrupt)
    assert_same(cpu_decode(TABLES, payloads, shape), results)


def test_gpu_refuses_a_cut_payload_as_truncated_and_decodes_its_batch():
    shape = (1, 12, 6, 10)
    c = codec(64)
    valid = c.encode(huge_latent(TABLES, shape, 3))
    payloads = [valid, *cuts(valid), replace(valid, data=valid.data + b"\0\0")]
    results = gpu_decode(TABLES, payloads, shape)
    assert isinstance(results[0], np.ndarray)
    assert [r.reason for r in results[1:]] == ["truncated"] * (len(payloads) - 2) + ["oversized"]
    assert_same(cpu_decode(TABLES, payloads, shape), results)


@pytest.mark.parametrize("name", sorted(lanes_mutations()))
def test_gpu_refuses_what_the_cpu_refuses(name):
    shape = (1, 12, 6, 10)
    c = codec(64)
    valid = c.encode(huge_latent(TABLES, shape, 5))
    rng = np.random.default_rng(11)
    payloads = [lanes_mutations()[name](valid, rng) for _ in range(4)]
    assert_same(cpu_decode(TABLES, payloads, shape), gpu_decode(TABLES, payloads, shape))
