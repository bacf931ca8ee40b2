"""The bottleneck codecs round-trip latents, match their references, and refuse bad payloads. No torch:
the robot side's tests (test_codecs_match_torch.py compares with torch)."""

import itertools
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from codec_fixtures import laplace_tables, reference_symbols
from hypothesis import given, settings
from hypothesis import strategies as st
from sc2_split.codecs import CODECS, EncodedTensor, EntropyTables, PayloadError, make_codec

CHANNELS = 8
SHAPE = (1, CHANNELS, 12, 16)
FUZZ = settings(max_examples=200, deadline=None)


TABLES = laplace_tables(CHANNELS)
CODEC = {name: make_codec(name, TABLES) for name in CODECS}


def latent(seed: int = 0, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """A latent around the tables' medians, with a few values far outside every table."""
    rng = np.random.default_rng(seed)
    x = rng.laplace(scale=1.5, size=shape).astype(np.float32) + TABLES.medians.reshape(1, -1, 1, 1)
    x[0, 0, 0, :4] = [40.0, -40.0, 3e5, -3e5]
    return x


VALID = {name: CODEC[name].encode(latent()) for name in CODECS}
# Version 1 (per-channel streams): still decoded; the tests of its chunks use it.
ENTROPY_V1 = make_codec("entropy", TABLES, entropy_version=1)
VALID_V1 = ENTROPY_V1.encode(latent())
ENTROPY_VERSIONS = {1: ENTROPY_V1, 2: CODEC["entropy"]}


def reason_of(decode, *args) -> str:
    with pytest.raises(PayloadError) as err:
        decode(*args)
    return err.value.reason


def test_fp16_round_trip_is_within_half_precision():
    x = latent()
    x[0, 0, 0, 2:4] = [60000.0, -60000.0]  # within float16's range
    y = CODEC["fp16"].decode(CODEC["fp16"].encode(x), SHAPE)
    assert y.dtype == np.float32 and y.shape == SHAPE
    np.testing.assert_allclose(y, x, rtol=2**-11, atol=2**-24)


def test_fp16_keeps_the_dtype_of_a_float16_latent():
    enc = CODEC["fp16"].encode(latent()[:, :, :, 4:].astype(np.float16))
    assert enc.dtype == "float16"
    assert len(enc.data) == 2 * math.prod(SHAPE) * 12 // 16


@pytest.mark.parametrize("seed", range(5))
def test_quant8_error_is_half_a_step_above_the_lowest_step(seed):
    # torchdistill truncates the zero point, so values within one step of the minimum may land up to
    # one step off (clamped to q = 0); everything above is rounded to the nearest step.
    x = latent(seed)[:, :, :, 4:]  # without the extremes, so that the step stays small
    enc = CODEC["quant8"].encode(x)
    error = np.abs(CODEC["quant8"].decode(enc, x.shape) - x)
    eps = 1e-6 * np.abs(x).max()
    assert error.max() <= enc.scale + eps
    assert error[x >= x.min() + enc.scale].max() <= enc.scale / 2 + eps


@pytest.mark.parametrize("value", [0.0, 3.25, -1e-3, 7e30])
def test_quant8_codes_a_constant_tensor_exactly(value):
    x = np.full(SHAPE, value, dtype=np.float32)
    enc = CODEC["quant8"].encode(x)
    assert enc.scale > 0
    assert np.array_equal(CODEC["quant8"].decode(enc, SHAPE), x)


def test_quant8_refuses_to_encode_nan():
    x = latent()
    x[0, 1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        CODEC["quant8"].encode(x)


@pytest.mark.parametrize("version", ENTROPY_VERSIONS)
def test_entropy_round_trip_is_exact_including_escaped_values(version):
    x = latent()
    codec = ENTROPY_VERSIONS[version]
    enc = codec.encode(x)
    assert enc.version == version
    symbols = codec.decode_symbols(enc, SHAPE)
    assert np.array_equal(symbols, reference_symbols(x, TABLES))
    expected = np.rint(x - TABLES.medians.reshape(1, -1, 1, 1)) + TABLES.medians.reshape(1, -1, 1, 1)
    assert codec.decode(enc, SHAPE).tobytes() == expected.astype(np.float32).tobytes()


def test_entropy_has_one_chunk_per_channel_and_one_of_escapes():
    enc = VALID_V1
    assert len(enc.chunk_sizes) == CHANNELS + 1
    assert sum(enc.chunk_sizes) == len(enc.data)
    assert enc.chunk_sizes[-1] > 0  # the latent has escaped values


@pytest.mark.parametrize("version", ENTROPY_VERSIONS)
def test_entropy_codes_a_batch_of_latents(version):
    x = latent(shape=(3, *SHAPE[1:]))
    codec = ENTROPY_VERSIONS[version]
    assert np.array_equal(codec.decode_symbols(codec.encode(x), x.shape), reference_symbols(x, TABLES))


def test_entropy_is_smaller_than_quant8_on_a_latent_that_fits_its_tables():
    sizes = {name: len(enc.data) for name, enc in VALID.items()}
    assert sizes["entropy"] < sizes["quant8"] < sizes["fp16"]


def test_entropy_tables_survive_json():
    loaded = EntropyTables.from_dict(json.loads(json.dumps(TABLES.to_dict())))
    for name in ("quantized_cdf", "cdf_length", "offset", "medians"):
        assert getattr(loaded, name).tobytes() == getattr(TABLES, name).tobytes()
    assert loaded.precision == TABLES.precision


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("offset"), "lack offset"),
        (lambda d: d["cdf_length"].pop(), "one entry per channel"),
        (lambda d: d["quantized_cdf"][0].pop(), "rectangular"),
        (lambda d: d["quantized_cdf"][0].__setitem__(1, 0), "rise strictly"),
        (lambda d: d["quantized_cdf"][0].__setitem__(0, 5), "start at 0"),
        (lambda d: d.__setitem__("precision", 15), "expected 2\\*\\*precision"),
        (lambda d: d["cdf_length"].__setitem__(0, 2), "expected 3 to"),
        (lambda d: d["medians"].__setitem__(0, float("nan")), "finite"),
        (lambda d: d["offset"].__setitem__(0, 1.5), "expected int32"),
    ],
)
def test_entropy_tables_refuse_inconsistent_tables(change, message):
    tables = TABLES.to_dict()
    change(tables)
    with pytest.raises(ValueError, match=message):
        EntropyTables.from_dict(tables)


@pytest.mark.parametrize("name", CODECS)
def test_payload_size_is_the_data_and_a_header_of_the_other_fields(name):
    enc = VALID[name]
    names = len(enc.codec) + len(enc.dtype)
    assert enc.nbytes == len(enc.data) + 30 + names + 4 * (len(SHAPE) + len(enc.chunk_sizes))


@pytest.mark.parametrize("name", CODECS)
def test_decode_refuses_another_codec(name):
    other = VALID["quant8" if name != "quant8" else "fp16"]
    assert reason_of(CODEC[name].decode, other, SHAPE) == "unknown_codec"


@pytest.mark.parametrize("name", CODECS)
def test_decode_refuses_another_version(name):
    assert reason_of(CODEC[name].decode, replace(VALID[name], version=3), SHAPE) == "version"


@pytest.mark.parametrize("name", CODECS)
def test_decode_refuses_an_unknown_dtype(name):
    assert reason_of(CODEC[name].decode, replace(VALID[name], dtype="float64"), SHAPE) == "dtype"


@pytest.mark.parametrize("name", CODECS)
def test_decode_refuses_a_shape_the_model_does_not_expect(name):
    enc = replace(VALID[name], shape=(1, CHANNELS, 16, 12))
    with pytest.raises(PayloadError, match=r"\(1, 8, 16, 12\).*\(1, 8, 12, 16\)") as err:
        CODEC[name].decode(enc, SHAPE)
    assert err.value.reason == "shape"


@pytest.mark.parametrize("name", CODECS)
def test_decode_refuses_truncated_and_extra_data(name):
    enc = VALID[name]
    assert reason_of(CODEC[name].decode, replace(enc, data=enc.data[:-1]), SHAPE) == "truncated"
    assert reason_of(CODEC[name].decode, replace(enc, data=enc.data + b"\0"), SHAPE) == "oversized"


@pytest.mark.parametrize(("field", "value"), [("scale", float("nan")), ("scale", 0.0), ("zero_point", 256)])
def test_quant8_refuses_impossible_parameters(field, value):
    assert reason_of(CODEC["quant8"].decode, replace(VALID["quant8"], **{field: value}), SHAPE) == "corrupt"


def entropy_with_chunks(chunks: list[bytes]) -> EncodedTensor:
    return replace(VALID_V1, data=b"".join(chunks), chunk_sizes=tuple(len(c) for c in chunks))


def entropy_chunks() -> list[bytes]:
    enc = VALID_V1
    bounds = np.cumsum((0, *enc.chunk_sizes))
    return [enc.data[a:b] for a, b in itertools.pairwise(bounds)]


def test_entropy_refuses_lying_chunk_sizes():
    enc = VALID_V1
    sizes = enc.chunk_sizes
    decode = ENTROPY_V1.decode
    assert reason_of(decode, replace(enc, chunk_sizes=sizes[:-1]), SHAPE) == "corrupt"
    assert reason_of(decode, replace(enc, chunk_sizes=(*sizes[:-1], sizes[-1] + 1)), SHAPE) == "truncated"
    assert reason_of(decode, replace(enc, chunk_sizes=(*sizes[:-1], sizes[-1] - 1)), SHAPE) == "oversized"
    shifted = (sizes[0] + 1, sizes[1] - 1, *sizes[2:])
    assert reason_of(decode, replace(enc, chunk_sizes=shifted), SHAPE) == "corrupt"
    assert reason_of(decode, replace(enc, chunk_sizes=(-4, sizes[1] + 4, *sizes[2:])), SHAPE) == "corrupt"


def test_entropy_refuses_leftover_or_missing_escaped_values():
    chunks = entropy_chunks()
    extra = entropy_with_chunks([*chunks[:-1], chunks[-1] + b"\x05"])
    missing = entropy_with_chunks([*chunks[:-1], chunks[-1][:-1]])
    assert reason_of(ENTROPY_V1.decode, extra, SHAPE) == "corrupt"
    assert reason_of(ENTROPY_V1.decode, missing, SHAPE) == "corrupt"


def test_entropy_refuses_a_stream_with_words_left_over():
    chunks = entropy_chunks()
    padded = entropy_with_chunks([b"\x01\0\0\0" + chunks[0], *chunks[1:]])
    assert reason_of(ENTROPY_V1.decode, padded, SHAPE) == "corrupt"


def test_entropy_refuses_an_escaped_value_longer_than_five_bytes():
    chunks = entropy_chunks()
    long_value = entropy_with_chunks([*chunks[:-1], b"\x80" * 5 + chunks[-1]])
    assert reason_of(ENTROPY_V1.decode, long_value, SHAPE) == "corrupt"


@pytest.mark.parametrize("version", ENTROPY_VERSIONS)
def test_entropy_codes_a_latent_without_escapes(version):
    x = np.broadcast_to(TABLES.medians.reshape(1, -1, 1, 1), SHAPE).astype(np.float32)
    codec = ENTROPY_VERSIONS[version]
    enc = codec.encode(x)
    if version == 1:
        assert enc.chunk_sizes[-1] == 0
    assert np.array_equal(codec.decode(enc, SHAPE), x)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((1, CHANNELS + 1, 2, 2), dtype=np.float32), "not \\(N, 8, ...\\)"),
        (np.full((1, CHANNELS, 2, 2), np.inf, dtype=np.float32), "infinite"),
        (np.zeros((1, CHANNELS, 2, 2)), "latent dtype is float64"),
    ],
)
@pytest.mark.parametrize("version", ENTROPY_VERSIONS)
def test_entropy_refuses_latents_it_cannot_code(x, message, version):
    with pytest.raises(ValueError, match=message):
        ENTROPY_VERSIONS[version].encode(x)


def test_entropy_turns_constriction_errors_into_corrupt():
    chunks = entropy_chunks()
    zero_word = entropy_with_chunks([*chunks[:3], b"\0\0\0\0", *chunks[4:]])
    assert reason_of(ENTROPY_V1.decode, zero_word, SHAPE) == "corrupt"


def test_make_codec_refuses_an_unknown_name():
    assert reason_of(make_codec, "zstd") == "unknown_codec"


def test_payload_error_accepts_only_known_reasons():
    with pytest.raises(ValueError, match="unknown payload error reason"):
        PayloadError("bad", "message")


def test_a_huge_declared_shape_is_refused_by_the_decoder():
    enc = replace(VALID["fp16"], shape=(2**32 - 1,) * 4)
    assert reason_of(CODEC["fp16"].decode, enc, SHAPE) == "shape"


def decodes_or_refuses(name: str, enc: EncodedTensor) -> None:
    """The contract under fuzzing: a float32 latent of the model's shape, or a PayloadError."""
    try:
        out = CODEC[name].decode(enc, SHAPE)
    except PayloadError:
        return
    assert out.shape == SHAPE and out.dtype == np.float32


@st.composite
def forged_payloads(draw) -> tuple[str, EncodedTensor]:
    name = draw(st.sampled_from(CODECS))
    size = {"fp16": 2 * math.prod(SHAPE), "quant8": math.prod(SHAPE), "entropy": 64}[name]
    data = draw(st.one_of(st.binary(min_size=size, max_size=size), st.binary(max_size=2 * size)))
    if draw(st.booleans()):  # chunks that add up, mostly whole words, to reach the ANS streams
        cuts = draw(st.lists(st.integers(0, len(data) // 4), min_size=CHANNELS, max_size=CHANNELS))
        bounds = [0, *sorted(4 * cut for cut in cuts), len(data)]
        chunk_sizes = tuple(b - a for a, b in itertools.pairwise(bounds))
    else:
        chunk_sizes = tuple(draw(st.lists(st.integers(-1, 2**32), max_size=CHANNELS + 2)))
    enc = EncodedTensor(
        codec=draw(st.sampled_from([name, name, name, "other"])),
        version=draw(st.sampled_from([1, 1, 1, 0, 65535])),
        shape=draw(st.sampled_from([SHAPE, SHAPE, SHAPE, (1, CHANNELS, 16, 12), ()])),
        dtype=draw(st.sampled_from(["float32", "float16", "float32", "int8"])),
        data=data,
        scale=draw(st.floats()),
        zero_point=draw(st.integers(-(2**31), 2**31 - 1)),
        chunk_sizes=chunk_sizes,
    )
    return name, enc


@FUZZ
@given(forged_payloads())
def test_decoders_only_raise_payload_error_on_forged_payloads(forged):
    decodes_or_refuses(*forged)


@FUZZ
@given(
    name=st.sampled_from(CODECS),
    flips=st.lists(st.tuples(st.integers(0, 2**20), st.integers(1, 255)), min_size=1, max_size=6),
)
def test_decoders_only_raise_payload_error_on_corrupted_data(name, flips):
    data = bytearray(VALID[name].data)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    decodes_or_refuses(name, replace(VALID[name], data=bytes(data)))
