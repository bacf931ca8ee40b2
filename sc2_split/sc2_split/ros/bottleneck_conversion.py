"""The head's result as a sc2_split_msgs/Bottleneck and back: the ROS message is 1:1 with
EncodedTensor plus ImageGeometry, so this is field copying and a few cheap size checks."""

import array

from std_msgs.msg import Header

from sc2_split.codecs.payload import DEFAULT_MAX_BYTES, MAX_NDIM, EncodedTensor, PayloadError
from sc2_split.frames import CodedFrame
from sc2_split.geometry import ImageGeometry
from sc2_split.head import HeadResult
from sc2_split.untrusted import shown
from sc2_split_msgs.msg import Bottleneck

# Longest frame id accepted: the tail echoes it in every detection message (REP 105 ids are short).
MAX_FRAME_ID_CHARS = 256


def to_bottleneck(result: HeadResult, header: Header, model_id: str, head_dropped_frames: int) -> Bottleneck:
    """The message for one encoded frame; the caller stamps `sent` just before publishing."""
    enc, g = result.encoded, result.geometry
    return Bottleneck(
        header=header,
        model_id=model_id,
        codec=enc.codec,
        codec_version=enc.version,
        shape=[int(s) for s in enc.shape],
        dtype=enc.dtype,
        scale=float(enc.scale),
        zero_point=int(enc.zero_point),
        chunk_sizes=[int(c) for c in enc.chunk_sizes],
        image_height=g.image_height,
        image_width=g.image_width,
        resized_height=g.resized_height,
        resized_width=g.resized_width,
        padded_height=g.padded_height,
        padded_width=g.padded_width,
        preprocess_ms=result.preprocess_ms,
        encode_ms=result.encode_ms,
        codec_ms=result.codec_ms,
        head_dropped_frames=head_dropped_frames,
        # An array.array is taken as is; bytes would be checked element by element by the setter.
        data=array.array("B", enc.data),
    )


def check_frame_id(frame_id: str) -> None:
    """PayloadError("header") for a frame id too long to send and echo back with every frame."""
    if len(frame_id) > MAX_FRAME_ID_CHARS:
        raise PayloadError(
            "header", f"frame id {shown(frame_id)} is longer than {MAX_FRAME_ID_CHARS} characters"
        )


def from_bottleneck(msg: Bottleneck, max_bytes: int = DEFAULT_MAX_BYTES) -> CodedFrame:
    """The coded frame of a received message; PayloadError if it is too big to try, or if its frame
    id is too long to echo back.

    rosidl has already typed every field; the codec and the tail check the payload against the model.
    """
    if len(msg.data) > max_bytes:
        raise PayloadError(
            "oversized", f"payload is {len(msg.data)} bytes, more than the limit of {max_bytes}"
        )
    check_frame_id(msg.header.frame_id)
    if len(msg.shape) > MAX_NDIM:
        raise PayloadError(
            "shape", f"payload declares {len(msg.shape)} dimensions, at most {MAX_NDIM} allowed"
        )
    encoded = EncodedTensor(
        codec=msg.codec,
        version=msg.codec_version,
        shape=tuple(msg.shape),
        dtype=msg.dtype,
        data=bytes(msg.data),
        scale=msg.scale,
        zero_point=msg.zero_point,
        chunk_sizes=tuple(msg.chunk_sizes),
    )
    geometry = ImageGeometry(
        image_height=msg.image_height,
        image_width=msg.image_width,
        resized_height=msg.resized_height,
        resized_width=msg.resized_width,
        padded_height=msg.padded_height,
        padded_width=msg.padded_width,
    )
    return CodedFrame(encoded, geometry, msg.model_id)
