"""python -m sc2_split.evaluation: bytes per frame against COCO mAP for every way of getting frames
to the detector, clean and with 1% and 5% of messages lost: full offloading into the teacher (raw,
JPEG, WebP, H.264 and H.265 streams) and the demo students per codec (split computing), with the
latency per frame of each path. Writes OUT/NAME.md, .json and .png (two panels: clean, and loss).

Input: the held-out procedural sequences (default), still frames (--still N), or a rosbag2 bag of
camera frames (--bag DIR --topic /camera/image_raw), whose reference is the teacher's detections on
the raw frames: agreement mAP."""

import argparse
import json
import sys
from pathlib import Path

import torch

from sc2_split.data.sequences import FPS, coco_video_ground_truth, sequences
from sc2_split.data.synthetic import coco_ground_truth, frames
from sc2_split.evaluation.latency import LatencyRow, measure
from sc2_split.evaluation.rate_accuracy import (
    JPEG_QUALITIES,
    LOSS_RATES,
    STUDENTS,
    VIDEO_BITRATES,
    VIDEO_GOPS_S,
    VIDEO_NAMES,
    WEBP_QUALITIES,
    Methods,
    Row,
    Scorer,
    Teacher,
    evaluate,
)
from sc2_split.evaluation.report import write


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sc2_split.evaluation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sequences", type=int, default=4, help="held-out sequences")
    p.add_argument("--length", type=int, default=2 * FPS, help="frames per sequence (at 30 Hz)")
    p.add_argument("--still", type=int, default=0, metavar="N", help="N still frames instead of sequences")
    p.add_argument("--bag", type=Path, help="a rosbag2 bag of camera frames instead (no labels)")
    p.add_argument("--topic", default="/camera/image_raw", help="the bag's camera topic")
    p.add_argument("--max-frames", type=int, default=0, help="the bag's first frames only (0: all)")
    p.add_argument("--split", default="test")
    p.add_argument("--students", nargs="*", default=list(STUDENTS), help="demo students, by checkpoint stem")
    p.add_argument("--jpeg", type=int, nargs="*", default=list(JPEG_QUALITIES), help="JPEG qualities")
    p.add_argument("--webp", type=int, nargs="*", default=list(WEBP_QUALITIES), help="WebP qualities")
    p.add_argument("--video", nargs="*", default=list(VIDEO_NAMES), choices=list(VIDEO_NAMES), help="codecs")
    p.add_argument("--bitrates", type=int, nargs="+", default=list(VIDEO_BITRATES), help="video, bit/s")
    p.add_argument(
        "--gops",
        type=float,
        nargs="+",
        default=list(VIDEO_GOPS_S),
        help="video keyframe intervals, s (0: intra)",
    )
    p.add_argument("--loss-draws", type=int, default=3, help="seeded loss patterns per loss rate")
    p.add_argument(
        "--latency-frames", type=int, default=30, help="frames timed per path (0: no latency table)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes that make the sequences and compute mAP (pycocotools)",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=Path("docs"))
    p.add_argument("--name", help="file stem (default: rate_accuracy_sequences, _still or _bag)")
    p.add_argument(
        "--no-plot",
        action="store_true",
        help="no .png (a machine without matplotlib): --merge of the .json draws it elsewhere",
    )
    p.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        help="instead of evaluating: one table of these JSON files, the same frames split by method",
    )
    p.add_argument("--about", help="with --merge: the table's description (default: the first file's)")
    args = p.parse_args(argv)
    if args.merge:
        rows, latency, about, metric = merged(args.merge)
        name = args.name or "rate_accuracy_sequences"
        path = write(rows, latency, args.about or about, metric, args.out, name, not args.no_plot)
        print(path.read_text())
        return 0

    if args.bag is not None:
        from sc2_split.evaluation.bag_input import REFERENCE_SCORE, bag_frames, reference_ground_truth

        recorded = bag_frames(args.bag, args.topic, args.max_frames)
        clips = [recorded.frames]
        height, width = recorded.frames[0].shape[:2]
        ground_truth = reference_ground_truth(Teacher(args.device).detect(recorded.frames), height, width)
        rejected = (
            f", {sum(recorded.rejected.values())} unreadable left out ({dict(recorded.rejected)})"
            if recorded.rejected
            else ""
        )
        about = (
            f"`{args.topic}` of the bag `{args.bag.name}`: {len(recorded.frames)} frames of {width}x{height}"
            f"{rejected}. Reference: the teacher's detections on the raw frames (score >= {REFERENCE_SCORE}),"
            " so the scores are agreement mAP with the teacher, not accuracy."
        )
        metric, name = "agreement mAP", "rate_accuracy_bag"
    elif args.still:
        data = list(frames(args.split, args.still))
        clips = [[image] for image, _ in data]
        ground_truth = coco_ground_truth([target for _, target in data])
        about = (
            f"Held-out `{args.split}` still frames of `sc2_split.data.synthetic`, {args.still} of 640x480."
        )
        metric, name = "mAP", "rate_accuracy_still"
    else:
        clips_data = sequences(args.split, args.sequences, args.length, workers=args.workers)
        clips = [[image for image, _ in clip] for clip in clips_data]
        ground_truth = coco_video_ground_truth([target for clip in clips_data for _, target in clip])
        about = (
            f"Held-out `{args.split}` sequences of `sc2_split.data.sequences`: {args.sequences} of "
            f"{args.length} frames (640x480, {FPS} Hz)."
        )
        metric, name = "mAP", "rate_accuracy_sequences"
    draws = f"; loss: {args.loss_draws} seeded draws per rate, the same frames for every method"
    about += f" Device: {args.device}{draws}."
    scorer = Scorer(ground_truth, [len(c) for c in clips], LOSS_RATES, args.loss_draws, args.workers)
    try:
        methods = Methods(
            tuple(args.jpeg),
            tuple(args.webp),
            () if args.still else tuple(args.video),  # a still frame is no stream
            tuple(args.bitrates),
            tuple(args.gops),
            tuple(args.students),
        )
        rows = evaluate(clips, scorer, args.device, methods, _print_row)
    finally:
        scorer.close()
    latency = measure(clips[0][: args.latency_frames]) if args.latency_frames and not args.still else []
    path = write(rows, latency, about, metric, args.out, args.name or name, not args.no_plot)
    print(path.read_text())
    print(f"wrote {path} and its .json{'' if args.no_plot else ', .png'}")
    return 0


def merged(paths: list[Path]) -> tuple[list[Row], list[LatencyRow], str, str]:
    """The rows and latency of evaluations run apart (by method) on the same frames, each row once."""
    documents = [json.loads(path.read_text()) for path in paths]
    if len({(d["about"], d["metric"]) for d in documents}) != 1:
        raise ValueError("the files to merge describe different evaluations (their `about` or metric differ)")
    rows: dict[tuple[str, str], Row] = {}
    for document in documents:
        for row in document["rows"]:
            rows.setdefault((row["method"], row["payload"]), Row(**row))
    latency = [LatencyRow(**t) for d in documents for t in d["latency"]]
    return list(rows.values()), latency, documents[0]["about"], documents[0]["metric"]


def _print_row(row: Row) -> None:
    lossy = " ".join(f"{k} {100 * v:.1f}" for k, v in row.lossy_map.items())
    print(
        f"{row.method:28s} {row.payload:28s} {row.bytes_per_frame:10.0f} B",
        f"mAP {100 * row.map:5.1f}  lost: {lossy}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
