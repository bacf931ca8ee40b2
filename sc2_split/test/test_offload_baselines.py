"""The full-offloading baselines send what they claim and decode as a receiver would: per-frame
images and video streams on a few small frames, and under loss a video stream corrupts the frames
after a lost P-frame until its next keyframe, while a lost bottleneck costs only its own frame."""

import numpy as np
import pytest
import torch
from PIL import Image
from sc2_split.data.sequences import coco_video_ground_truth, sequence
from sc2_split.data.synthetic import frames
from sc2_split.evaluation.coco_map import evaluate_detector
from sc2_split.evaluation.rate_accuracy import Methods, Scorer, demo_student, evaluate, lost_frames
from sc2_split.frames import CodedFrame
from sc2_split.models.build import model_id
from sc2_split.models.split import Head, image_geometry
from sc2_split.offload.frame_codecs import ImageCodec
from sc2_split.offload.video import VideoSettings, decode_stream, encode_stream
from sc2_split.tail import TailPipeline

FRAMES = 12
GOP = 6


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    """A panning, driving or still stretch of a sequence, at 160x120 to keep the codecs quick."""
    frames = [image for image, _ in sequence("test", 4, FRAMES)]
    return [np.asarray(Image.fromarray(f).resize((160, 120), Image.Resampling.BILINEAR)) for f in frames]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_image_codecs_shrink_with_quality_and_decode_alone(clip: list[np.ndarray], fmt: str) -> None:
    low, high = ImageCodec(fmt, 20), ImageCodec(fmt, 90)
    for frame in clip[:2]:
        small, large = low.encode(frame), high.encode(frame)
        assert 0 < len(small) < len(large) < frame.nbytes
        decoded = high.decode(large)
        assert decoded.shape == frame.shape and decoded.dtype == np.uint8
        assert psnr(decoded, frame) > psnr(low.decode(small), frame) > 20
    other = ImageCodec("WEBP" if fmt == "JPEG" else "JPEG", 50)
    with pytest.raises(ValueError, match=f"expected a {fmt} file"):
        high.decode(other.encode(clip[0]))


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_video_streams_send_one_packet_per_frame_at_the_bitrate(clip: list[np.ndarray], codec: str) -> None:
    sizes = {}
    for gop in (GOP, 1):
        settings = VideoSettings(codec, 200_000, gop, fps=30)
        packets = encode_stream(clip, settings)
        assert [p.frame for p in packets] == list(range(FRAMES))
        assert all(p.held_frames == 0 for p in packets)  # zero latency: no frame waits in the encoder
        assert [p.frame for p in packets if p.keyframe] == list(range(0, FRAMES, gop))
        sizes[gop] = np.mean([len(p.data) for p in packets])
        shown = decode_stream(packets, codec)
        assert all(f is not None and f.shape == clip[0].shape for f in shown)
        assert min(psnr(f, c) for f, c in zip(shown, clip, strict=True)) > 22
    # Rate control holds the stream near 200 kbit/s; intra frames cost more at the same rate.
    assert 200_000 / 30 / 8 / 3 < sizes[GOP] < 200_000 / 30 / 8 * 3
    assert sizes[1] > sizes[GOP]


def test_a_lost_h264_p_frame_corrupts_the_frames_after_it_until_the_next_keyframe(
    clip: list[np.ndarray],
) -> None:
    packets = encode_stream(clip, VideoSettings("h264", 300_000, GOP))
    clean = decode_stream(packets, "h264")
    lost = 2  # a P-frame: keyframes are 0 and 6
    shown = decode_stream(packets, "h264", lost={lost})
    assert all(np.array_equal(shown[i], clean[i]) for i in range(lost))
    assert shown[lost] is None
    corrupted = range(lost + 1, GOP)
    assert all(
        f is not None and not np.array_equal(f, clean[i])
        for i, f in zip(corrupted, shown[lost + 1 : GOP], strict=True)
    )
    assert all(np.array_equal(shown[i], clean[i]) for i in range(GOP, FRAMES))  # the keyframe heals it
    # Intra only: the lost frame alone is gone.
    intra = encode_stream(clip, VideoSettings("h264", 300_000, 1))
    intra_clean, intra_lossy = decode_stream(intra, "h264"), decode_stream(intra, "h264", lost={lost})
    assert intra_lossy[lost] is None
    assert all(np.array_equal(intra_lossy[i], intra_clean[i]) for i in range(FRAMES) if i != lost)


def test_a_lost_bottleneck_costs_only_its_own_frame() -> None:
    frames = [image for image, _ in sequence("test", 4, 3)]
    model = demo_student("demo_bq1")
    tail = TailPipeline(model, model_id("demo_bq1", model))
    geometry = image_geometry(model, *frames[0].shape[:2])
    head = Head(model, geometry).eval()
    with torch.inference_mode():
        payloads = [tail.codecs["quant8"].encode(head(torch.from_numpy(f)).numpy()) for f in frames]

    def received(lost: set[int]) -> list:
        return [
            None if i in lost else tail(CodedFrame(p, geometry, tail.model_id))
            for i, p in enumerate(payloads)
        ]

    clean, lossy = received(set()), received({1})
    assert lossy[1] is None
    for i in (0, 2):
        np.testing.assert_array_equal(lossy[i].boxes, clean[i].boxes)
        np.testing.assert_array_equal(lossy[i].scores, clean[i].scores)


def test_a_students_row_scores_what_its_tail_detects_frame_by_frame() -> None:
    """The evaluation decodes and detects a student's frames in batches; its row's mAP is that of the
    tail's detections of one frame at a time."""
    data = sequence("test", 4, 3)
    frames = [image for image, _ in data]
    scorer = Scorer(coco_video_ground_truth([target for _, target in data]), [len(frames)], draws=1)
    rows = evaluate([frames], scorer, "cpu", Methods((), (), (), students=("demo_bq1",)))
    assert [(r.method, r.payload) for r in rows] == [("teacher", "raw"), ("demo_bq1", "quant8")]

    model = demo_student("demo_bq1")
    tail = TailPipeline(model, model_id("demo_bq1", model))
    geometry = image_geometry(model, *frames[0].shape[:2])
    head = Head(model, geometry).eval()
    outputs = []
    with torch.inference_mode():
        for f in frames:
            result = tail(
                CodedFrame(
                    tail.codecs["quant8"].encode(head(torch.from_numpy(f)).numpy()), geometry, tail.model_id
                )
            )
            outputs.append({k: torch.from_numpy(getattr(result, k)) for k in ("boxes", "scores", "labels")})
    expected_map, expected_map_50 = scorer.score([outputs])[0]
    assert rows[1].map == pytest.approx(expected_map, abs=1e-3)
    assert rows[1].map_50 == pytest.approx(expected_map_50, abs=1e-3)
    assert rows[1].map > 0.3


def test_the_bq_client_sends_one_raw_byte_per_latent_element() -> None:
    model = demo_student("demo_bq1")
    head = Head(model, image_geometry(model, 480, 640)).eval()
    frame, _ = sequence("test", 0, 1)[0]
    with torch.inference_mode():
        latent = head(torch.from_numpy(frame)).numpy()
    assert latent.shape == (1, 1, 119, 159)
    encoded = TailPipeline(model, model_id("demo_bq1", model)).codecs["quant8"].encode(latent)
    assert len(encoded.data) == 119 * 159  # about 19 KB a 640x480 frame, as the seed's client sends
    assert encoded.nbytes - len(encoded.data) < 100  # and a small header


def test_the_bundled_bq_client_detects_through_its_one_channel_bottleneck() -> None:
    """Trained as a student of the demo family (75 mAP on 128 val frames), not a placeholder: the
    earlier 389-step checkpoint found almost nothing (mAP@.5 0.07 on these frames)."""
    model = demo_student("demo_bq1")
    data = list(frames("val", 8))
    images = [torch.from_numpy(image).permute(2, 0, 1) for image, _ in data]
    figures = evaluate_detector(model, [(images, [target for _, target in data])], torch.device("cpu"))
    assert figures["map_50"] > 0.6


def test_loss_draws_are_seeded_and_shared_by_every_method() -> None:
    first, again = lost_frames(2000, 0.05, 3), lost_frames(2000, 0.05, 3)
    assert first == again and len(set(first)) == 3
    assert all(60 < len(lost) < 140 for lost in first)
    ground_truth = {"images": [{"id": i + 1} for i in range(10)], "annotations": [], "categories": []}
    scorer = Scorer(ground_truth, [4, 6], draws=2)
    assert scorer.clip_losses(frozenset({1, 4, 9})) == [frozenset({1}), frozenset({0, 5})]
