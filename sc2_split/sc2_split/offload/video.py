"""Frames sent as an H.264 or H.265 stream, encoded and decoded with the x264/x265 and FFmpeg
decoders inside PyAV's wheels, set up as robots stream video: the zero-latency tune (no lookahead,
no B-frames: every packet codes one frame, in order), constant bitrate, a fixed GOP (a keyframe
every `gop` frames; 1 is intra-only), parameter sets repeated before every keyframe so that a late
receiver can start there.

A lost packet is left out of the decoder's input, nothing else: the frames after it are what the
FFmpeg decoder makes of references it never got, until the next keyframe.
"""

import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

ENCODERS = {"h264": "libx264", "h265": "libx265"}
DECODERS = {"h264": "h264", "h265": "hevc"}


@dataclass(frozen=True)
class VideoSettings:
    codec: str  # "h264" or "h265"
    bitrate: int  # bits per second
    gop: int  # frames from one keyframe to the next; 1: intra only
    fps: int = 30
    preset: str = "veryfast"

    def __post_init__(self) -> None:
        if self.codec not in ENCODERS or self.bitrate <= 0 or self.gop < 1 or self.fps < 1:
            raise ValueError(f"video settings {self}: codec {tuple(ENCODERS)}, positive bitrate, gop, fps")

    @property
    def name(self) -> str:
        gop = "intra" if self.gop == 1 else f"gop {self.gop / self.fps:g} s"
        return f"{self.codec} {self.bitrate / 1e6:g} Mbit/s {gop}"


@dataclass(frozen=True)
class Packet:
    data: bytes
    frame: int  # index of the frame it codes
    keyframe: bool
    encode_s: float  # wall time of the encode call that gave it out
    held_frames: int  # frames the encoder took in after this one before giving it out


class VideoEncoder:
    """One stream: frames in, packets out as soon as the encoder gives them."""

    def __init__(self, settings: VideoSettings, width: int, height: int) -> None:
        self.settings = settings
        context = av.CodecContext.create(ENCODERS[settings.codec], "w")
        context.width, context.height = width, height
        context.pix_fmt = "yuv420p"
        context.framerate = settings.fps
        context.time_base = Fraction(1, settings.fps)
        context.bit_rate = settings.bitrate
        context.gop_size = settings.gop
        context.max_b_frames = 0
        params = f"keyint={settings.gop}:min-keyint={settings.gop}:scenecut=0"
        if settings.codec == "h265":
            params += ":bframes=0:repeat-headers=1:log-level=error"
        rate = str(settings.bitrate)
        context.options = {
            "preset": settings.preset,
            "tune": "zerolatency",
            "maxrate": rate,
            "bufsize": rate,  # one second of stream: constant bitrate, as links want it
            f"{ENCODERS[settings.codec][3:]}-params": params,
        }
        self._context = context
        self._frames_in = 0

    def encode(self, rgb: np.ndarray) -> list[Packet]:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self._frames_in
        self._frames_in += 1
        started = time.perf_counter()
        packets = self._context.encode(frame.reformat(format="yuv420p"))
        return self._packets(packets, time.perf_counter() - started)

    def flush(self) -> list[Packet]:
        started = time.perf_counter()
        packets = self._context.encode(None)
        return self._packets(packets, time.perf_counter() - started)

    def _packets(self, packets: list[av.Packet], seconds: float) -> list[Packet]:
        return [
            Packet(bytes(p), int(p.pts), bool(p.is_keyframe), seconds, self._frames_in - 1 - int(p.pts))
            for p in packets
        ]


def encode_stream(frames: Iterable[np.ndarray], settings: VideoSettings) -> list[Packet]:
    """Every frame's packet, in frame order (one per frame: the zero-latency tune drops none)."""
    encoder: VideoEncoder | None = None
    packets: list[Packet] = []
    for rgb in frames:
        if encoder is None:
            encoder = VideoEncoder(settings, rgb.shape[1], rgb.shape[0])
        packets += encoder.encode(rgb)
    if encoder is not None:
        packets += encoder.flush()
    if [p.frame for p in packets] != list(range(len(packets))):
        raise RuntimeError(f"{settings.name}: expected one packet per frame, in order")
    return packets


class VideoDecoder:
    """One stream's receiver: packets in, in order, each giving the pictures the decoder has ready
    (with the zero-latency tune, that packet's own)."""

    def __init__(self, codec: str) -> None:
        self._context = av.CodecContext.create(DECODERS[codec], "r")

    def decode(self, data: bytes | None, frame: int = 0) -> list[tuple[int, np.ndarray]]:
        """(frame index, RGB) of each picture given out for the packet of frame `frame`; None
        flushes the decoder at the stream's end. A packet that gives no picture gives []."""
        packet = None
        if data is not None:
            packet = av.Packet(data)
            packet.pts = frame
        try:
            decoded = self._context.decode(packet)
        except av.error.InvalidDataError:
            return []  # this packet gives no picture; the next ones may
        return [(int(f.pts), f.to_ndarray(format="rgb24")) for f in decoded if f.pts is not None]


def decode_stream(packets: list[Packet], codec: str, lost: Collection[int] = ()) -> list[np.ndarray | None]:
    """What the receiver shows of each frame: the decoded RGB frame, or None where its packet was
    lost or the decoder gave nothing for it. Lost packets (by frame index) never reach the decoder."""
    decoder = VideoDecoder(codec)
    shown: list[np.ndarray | None] = [None] * len(packets)
    for packet in [*packets, None]:
        if packet is not None and packet.frame in lost:
            continue
        pictures = decoder.decode(None) if packet is None else decoder.decode(packet.data, packet.frame)
        for index, rgb in pictures:
            if 0 <= index < len(shown):
                shown[index] = rgb
    return shown
