"""Rate against accuracy: every way of getting a robot's frames to a detector, on the same frames.

Full offloading sends the frame (JPEG or WebP per frame, H.264 or H.265 as a stream) to the
teacher; split computing sends a student's bottleneck to its tail. Each method gives bytes per
frame and COCO mAP, clean and with messages lost. A lost message gives no detections for its
frame; for a video stream the decoder then works on without it (offload/video.py), so the frames
after it are detected on what it shows, until the next keyframe. Every method loses the same
frames (a few seeded draws per loss rate), so that rows compare frame for frame.
"""

from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sc2_split.bundled import DEMO_CHECKPOINT, DEMO_DIR
from sc2_split.evaluation.coco_map import coco_detections, coco_map
from sc2_split.frames import CodedFrame
from sc2_split.models.build import build_detector, model_id
from sc2_split.models.config import bundled_config_path, load_model_config
from sc2_split.models.split import Head, image_geometry
from sc2_split.offload.frame_codecs import ImageCodec
from sc2_split.offload.video import VideoSettings, decode_stream, encode_stream
from sc2_split.tail import TailPipeline

LOSS_RATES = (0.01, 0.05)
JPEG_QUALITIES = (10, 20, 30, 50, 75, 90)
WEBP_QUALITIES = (10, 30, 50, 75, 90)
VIDEO_BITRATES = (250_000, 500_000, 1_000_000, 2_000_000, 4_000_000)
VIDEO_GOPS_S = (1.0, 0.0)  # a keyframe every second, and intra only
# Students of the table: the entropic ones across their rates, the default (stage 2), and the
# 8-bit ones: 16 channels, and the seed's 1-channel BQ client.
STUDENTS = (
    "demo_fp_beta0.32",
    "demo_fp_beta1.28",
    "demo_fp_beta2.56",
    "demo_fp_beta4.5",
    "demo_fp_beta20.48",
    DEMO_CHECKPOINT,
    "demo_bq8",
    "demo_bq1",
)
_BATCH = 8
VIDEO_FPS = 30
VIDEO_NAMES = {"h264": "H.264", "h265": "H.265"}

# A detector's output for one frame (torchvision's boxes, scores, labels), or None: nothing shown.
Output = dict[str, Tensor] | None
Clip = list[np.ndarray]  # the frames of one stream, in order


@dataclass(frozen=True)
class Row:
    method: str  # the family a curve is drawn for: "JPEG", "H.264 GOP 1 s", a student's name, ...
    payload: str  # what one point sends: "jpeg q50", "h264 1 Mbit/s gop 1 s", a codec's name, ...
    bytes_per_frame: float
    map: float
    map_50: float
    lossy_map: dict[str, float] = field(default_factory=dict)  # by loss rate, e.g. "5%"
    lossy_map_50: dict[str, float] = field(default_factory=dict)


class Scorer:
    """The frames' ground truth, and the frames each loss draw takes away. `workers` > 1 scores on
    that many processes (pycocotools is the slow part of a row)."""

    def __init__(
        self,
        ground_truth: dict[str, Any],
        clip_lengths: list[int],
        loss_rates: tuple[float, ...] = LOSS_RATES,
        draws: int = 3,
        workers: int = 1,
    ) -> None:
        self.ground_truth = ground_truth
        self.image_ids = [int(image["id"]) for image in ground_truth["images"]]
        if sum(clip_lengths) != len(self.image_ids):
            raise ValueError(
                f"{sum(clip_lengths)} frames in clips, {len(self.image_ids)} in the ground truth"
            )
        self.starts = np.cumsum([0, *clip_lengths[:-1]]).tolist()
        self.lengths = clip_lengths
        self.losses = {rate: lost_frames(len(self.image_ids), rate, draws) for rate in loss_rates}
        self._pool = (
            ProcessPoolExecutor(workers, initializer=_set_worker_truth, initargs=(ground_truth,))
            if workers > 1
            else None
        )

    def score(self, variants: list[list[Output]]) -> list[tuple[float, float]]:
        """mAP@[.5:.95] and mAP@.5 of each variant (one output per frame)."""
        detections = [
            [
                d
                for i, out in zip(self.image_ids, outputs, strict=True)
                if out
                for d in coco_detections(i, out)
            ]
            for outputs in variants
        ]
        if self._pool is None:
            return [_scores(self.ground_truth, d) for d in detections]
        return list(self._pool.map(_score_in_worker, detections))

    def clip_losses(self, lost: frozenset[int]) -> list[frozenset[int]]:
        """A draw's lost frames, as indexes into each clip."""
        return [
            frozenset(i - start for i in lost if start <= i < start + n)
            for start, n in zip(self.starts, self.lengths, strict=True)
        ]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


_worker_truth: dict[str, Any] = {}


def _set_worker_truth(ground_truth: dict[str, Any]) -> None:
    _worker_truth.update(ground_truth)


def _score_in_worker(detections: list[dict[str, Any]]) -> tuple[float, float]:
    return _scores(_worker_truth, detections)


def _scores(ground_truth: dict[str, Any], detections: list[dict[str, Any]]) -> tuple[float, float]:
    scores = coco_map(ground_truth, detections)
    return scores["map"], scores["map_50"]


def lost_frames(count: int, rate: float, draws: int) -> list[frozenset[int]]:
    """`draws` independent patterns of lost messages among `count`, each lost with probability `rate`."""
    patterns = []
    for draw in range(draws):
        rng = np.random.default_rng([draw, round(rate * 1e6)])
        patterns.append(frozenset(np.flatnonzero(rng.random(count) < rate).tolist()))
    return patterns


class Teacher:
    """The full-offloading receiver: the demo teacher on whatever frames arrive."""

    def __init__(self, device: str) -> None:
        config = load_model_config(bundled_config_path("demo_teacher"))
        self.model = build_detector(config, DEMO_DIR / "demo_teacher.pt").to(device)
        self.device = device

    @torch.inference_mode()
    def detect(self, frames: list[np.ndarray | None]) -> list[Output]:
        outputs: list[Output] = [None] * len(frames)
        shown = [i for i, f in enumerate(frames) if f is not None]
        for at in range(0, len(shown), _BATCH):
            batch = shown[at : at + _BATCH]
            images = [
                torch.from_numpy(frames[i].copy()).to(self.device).permute(2, 0, 1).float().div_(255)
                for i in batch
            ]
            for i, out in zip(batch, self.model(images), strict=True):
                outputs[i] = {k: v.cpu() for k, v in out.items()}
        return outputs


@dataclass(frozen=True)
class Methods:
    """What one evaluation compares: the points of each curve."""

    jpeg: tuple[int, ...] = JPEG_QUALITIES
    webp: tuple[int, ...] = WEBP_QUALITIES
    video_codecs: tuple[str, ...] = tuple(VIDEO_NAMES)
    video_bitrates: tuple[int, ...] = VIDEO_BITRATES
    video_gops_s: tuple[float, ...] = VIDEO_GOPS_S  # 0: intra only
    students: tuple[str, ...] = STUDENTS


def evaluate(
    clips: list[Clip],
    scorer: Scorer,
    device: str = "cpu",
    methods: Methods = Methods(),
    log: Callable[[Row], None] = lambda row: None,
) -> list[Row]:
    """Every method's row: the teacher on raw frames, JPEG, WebP, H.264 and H.265, and each student
    per codec."""
    rows = []
    for row in _rows(clips, scorer, device, methods):
        log(row)
        rows.append(row)
    return rows


def _rows(clips: list[Clip], scorer: Scorer, device: str, methods: Methods) -> Iterator[Row]:
    teacher = Teacher(device)
    frames = [f for clip in clips for f in clip]
    yield _per_frame_row(scorer, "teacher", "raw", [f.nbytes for f in frames], teacher.detect(frames))
    for fmt, label, qualities in (("JPEG", "JPEG", methods.jpeg), ("WEBP", "WebP", methods.webp)):
        for quality in qualities:
            codec = ImageCodec(fmt, quality)
            sent = [codec.encode(f) for f in frames]
            received = [codec.decode(data) for data in sent]
            yield _per_frame_row(scorer, label, codec.name, [len(s) for s in sent], teacher.detect(received))
    for codec in methods.video_codecs:
        for gop_s in methods.video_gops_s:
            for bitrate in methods.video_bitrates:
                yield _video_row(clips, scorer, teacher, codec, bitrate, gop_s)
    for name in methods.students:
        yield from _student_rows(name, frames, scorer, device)


def _per_frame_row(scorer: Scorer, method: str, payload: str, sizes: list[int], outputs: list[Output]) -> Row:
    """A method whose frames decode alone: a lost message empties its own frame, nothing else."""
    lossy = {
        rate: [[None if i in lost else o for i, o in enumerate(outputs)] for lost in draws]
        for rate, draws in scorer.losses.items()
    }
    return _row(method, payload, sizes, scorer, outputs, lossy)


def _video_row(
    clips: list[Clip], scorer: Scorer, teacher: Teacher, codec: str, bitrate: int, gop_s: float
) -> Row:
    settings = VideoSettings(codec, bitrate, max(round(gop_s * VIDEO_FPS), 1), VIDEO_FPS)
    streams = []
    for clip in clips:
        packets = encode_stream(clip, settings)
        streams.append((packets, decode_stream(packets, codec)))
    clean = [frame for _, shown in streams for frame in shown]
    clean_outputs = teacher.detect(clean)
    lossy: dict[float, list[list[Output]]] = {}
    for rate, draws in scorer.losses.items():
        lossy[rate] = []
        for lost in draws:
            shown = [
                frame
                for (packets, clean_shown), clip_lost in zip(streams, scorer.clip_losses(lost), strict=True)
                for frame in (decode_stream(packets, codec, clip_lost) if clip_lost else clean_shown)
            ]
            # Frames the loss left as they were keep their detections; the others are detected anew.
            changed = [f is not None and not np.array_equal(f, c) for f, c in zip(shown, clean, strict=True)]
            fresh = teacher.detect([f if ch else None for f, ch in zip(shown, changed, strict=True)])
            lossy[rate].append(
                [
                    None if f is None else (new if ch else old)
                    for f, ch, new, old in zip(shown, changed, fresh, clean_outputs, strict=True)
                ]
            )
    sizes = [len(p.data) for packets, _ in streams for p in packets]
    gop = "intra" if settings.gop == 1 else f"GOP {gop_s:g} s"
    family = f"{VIDEO_NAMES[codec]} {gop}"
    return _row(family, settings.name, sizes, scorer, clean_outputs, lossy)


def _student_rows(name: str, frames: list[np.ndarray], scorer: Scorer, device: str) -> Iterator[Row]:
    """One row per codec the student's tail takes: its own (entropy, or quant8 for an 8-bit
    student), and every codec for the default student."""
    model = demo_student(name)
    tail = TailPipeline(model, model_id(name, model), device)
    geometry = image_geometry(model, *frames[0].shape[:2])
    head = Head(model, geometry).to(device).eval()
    with torch.inference_mode():
        latents = [head(torch.from_numpy(f).to(device)).cpu().numpy() for f in frames]
    for codec_name, codec in tail.codecs.items():
        if name != DEMO_CHECKPOINT and codec_name != ("entropy" if "entropy" in tail.codecs else "quant8"):
            continue
        encoded = [codec.encode(latent) for latent in latents]
        outputs: list[Output] = []
        for at in range(0, len(encoded), _BATCH):  # each payload checked and decoded, then one batch
            batch = [tail.decode(CodedFrame(e, geometry, tail.model_id)) for e in encoded[at : at + _BATCH]]
            for result in tail.detect_batch(batch, [geometry] * len(batch)):
                outputs.append({k: torch.from_numpy(v) for k, v in result.items()})
        yield _per_frame_row(scorer, name, codec_name, [e.nbytes for e in encoded], outputs)
    tail.close()


def demo_student(name: str) -> nn.Module:
    """A bundled demo student by checkpoint stem, built from the config it belongs to."""
    config = "demo_fp" if name.startswith("demo_fp") else name
    return build_detector(load_model_config(bundled_config_path(config)), DEMO_DIR / f"{name}.pt")


def _row(
    method: str,
    payload: str,
    sizes: list[int],
    scorer: Scorer,
    clean: list[Output],
    lossy: dict[float, list[list[Output]]],
) -> Row:
    """Scores the clean outputs and every loss draw at once; a loss rate's figure is its draws' mean."""
    variants = [clean, *(v for draws in lossy.values() for v in draws)]
    scores = scorer.score(variants)
    by_rate, at = {}, 1
    for rate, draws in lossy.items():
        by_rate[_rate_name(rate)] = np.mean(scores[at : at + len(draws)], axis=0)
        at += len(draws)
    return Row(
        method,
        payload,
        float(np.mean(sizes)),
        float(scores[0][0]),
        float(scores[0][1]),
        {k: float(v[0]) for k, v in by_rate.items()},
        {k: float(v[1]) for k, v in by_rate.items()},
    )


def _rate_name(rate: float) -> str:
    return f"{100 * rate:g}%"
