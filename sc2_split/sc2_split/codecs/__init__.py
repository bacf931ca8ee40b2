"""Bottleneck codecs by name. Pure numpy (no torch, no compressai), so that the robot's head can use them."""

from sc2_split.codecs.entropy import ChannelCoder, EntropyCodec, EntropyTables
from sc2_split.codecs.fp16 import Fp16Codec
from sc2_split.codecs.payload import Codec, EncodedTensor, PayloadError
from sc2_split.codecs.quant8 import Quant8Codec
from sc2_split.untrusted import shown

__all__ = ["CODECS", "Codec", "EncodedTensor", "EntropyTables", "PayloadError", "make_codec"]

CODECS = ("entropy", "quant8", "fp16")


def make_codec(
    name: str,
    tables: EntropyTables | None = None,
    channels: ChannelCoder | None = None,
    entropy_version: int | None = None,
) -> Codec:
    """The codec called `name`; "entropy" needs the model's tables (from its metadata file), encodes
    `entropy_version` (2: lanes; 1: per-channel streams, coded by `channels`, a ChannelPool, where
    given, else in process; default: 1 with `channels`, else 2) and decodes both."""
    if name == "entropy":
        if tables is None:
            raise ValueError("the entropy codec needs the model's EntropyTables")
        return EntropyCodec(tables, channels, entropy_version)
    if name == "quant8":
        return Quant8Codec()
    if name == "fp16":
        return Fp16Codec()
    raise PayloadError(
        "unknown_codec", f"codec {shown(name)} is unknown; expected one of {', '.join(CODECS)}"
    )
