"""Latency per frame of each path on the robot's side: the time to encode a frame, what the video
encoder holds back (frames it takes in before giving a frame's packet out, at the frame rate), and
the frame's bytes on a 10 Mbit/s link. The edge's decoding and detection come on top for every
path alike; they are in docs/benchmarks.md."""

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from sc2_split.bundled import DEMO_CHECKPOINT
from sc2_split.codecs import make_codec
from sc2_split.evaluation.rate_accuracy import demo_student
from sc2_split.models.entropy_tables import tables_from_entropy_bottleneck
from sc2_split.models.split import Head, entropy_bottleneck, image_geometry
from sc2_split.offload.frame_codecs import ImageCodec
from sc2_split.offload.video import VideoSettings, encode_stream

LINK_BITS_PER_S = 10e6
FPS = 30
IMAGE_PATHS = (ImageCodec("JPEG", 50), ImageCodec("JPEG", 90), ImageCodec("WEBP", 50))
VIDEO_PATHS = (
    VideoSettings("h264", 1_000_000, FPS),
    VideoSettings("h264", 1_000_000, 1),
    VideoSettings("h265", 1_000_000, FPS),
)
STUDENT_PATHS = ((DEMO_CHECKPOINT, "entropy"), ("demo_bq8", "quant8"), ("demo_bq1", "quant8"))


@dataclass(frozen=True)
class LatencyRow:
    path: str
    encode_ms: float  # median per frame
    held_frames: int  # most frames the encoder held back
    bytes_per_frame: float
    link_ms: float  # mean bytes on the link
    total_ms: float  # encode + held frames at FPS + link


def measure(frames: list[np.ndarray]) -> list[LatencyRow]:
    """Every path on these frames (one stream, in order), on this machine's CPU."""
    rows = []
    for codec in IMAGE_PATHS:
        times, sizes = [], []
        for f in frames:
            started = time.perf_counter()
            sizes.append(len(codec.encode(f)))
            times.append(time.perf_counter() - started)
        rows.append(_row(f"{codec.name} (per frame)", times, 0, sizes))
    for settings in VIDEO_PATHS:
        packets = encode_stream(frames, settings)
        held = max(p.held_frames for p in packets)
        rows.append(_row(settings.name, [p.encode_s for p in packets], held, [len(p.data) for p in packets]))
    for name, codec_name in STUDENT_PATHS:
        rows.append(_student(name, codec_name, frames))
    return rows


def _student(name: str, codec_name: str, frames: list[np.ndarray]) -> LatencyRow:
    """The head (torch on this CPU; ONNX Runtime or TensorRT on a robot) and the bottleneck codec."""
    model = demo_student(name)
    head = Head(model, image_geometry(model, *frames[0].shape[:2])).eval()
    prior = entropy_bottleneck(model)
    codec = make_codec(codec_name, None if prior is None else tables_from_entropy_bottleneck(prior))
    times, sizes = [], []
    with torch.inference_mode():
        for f in frames:
            started = time.perf_counter()
            encoded = codec.encode(head(torch.from_numpy(f)).numpy())
            times.append(time.perf_counter() - started)
            sizes.append(encoded.nbytes)
    return _row(f"{name} {codec_name}", times, 0, sizes)


def _row(path: str, seconds: list[float], held: int, sizes: list[int]) -> LatencyRow:
    encode_ms = 1e3 * statistics.median(seconds)
    link_ms = 1e3 * 8 * float(np.mean(sizes)) / LINK_BITS_PER_S
    return LatencyRow(
        path, encode_ms, held, float(np.mean(sizes)), link_ms, encode_ms + 1e3 * held / FPS + link_ms
    )
