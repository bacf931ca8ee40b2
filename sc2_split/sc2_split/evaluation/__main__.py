"""python -m sc2_split.evaluation: COCO mAP@[.5:.95] and mAP@.5 on held-out synthetic frames for the
teacher (raw and JPEG-offloaded frames) and every demo student per codec, with bytes per frame.
Writes a Markdown table, JSON, and a rate-accuracy plot (PNG)."""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from sc2_split.bundled import STAGE2_SUFFIX
from sc2_split.evaluation.rate_accuracy import Row, evaluate


def markdown(rows: list[Row], count: int, split: str) -> str:
    lines = [
        f"Held-out `{split}` split of `sc2_split.data.synthetic`, {count} frames of 640x480.",
        "",
        "| method | payload | bytes/frame | mAP@[.5:.95] | mAP@.5 |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        scores = f"{100 * r.map:.1f} | {100 * r.map_50:.1f}"
        lines.append(f"| {r.method} | {r.payload} | {r.bytes_per_frame:,.0f} | {scores} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    jpeg = [r for r in rows if r.payload.startswith("jpeg")]
    ax.plot(
        [r.bytes_per_frame for r in jpeg],
        [100 * r.map for r in jpeg],
        "o-",
        color="gray",
        label="JPEG -> teacher (full offloading)",
    )
    for r in jpeg:
        ax.annotate(
            r.payload.split()[1],
            (r.bytes_per_frame, 100 * r.map),
            fontsize=7,
            textcoords="offset points",
            xytext=(3, -9),
        )
    markers = {"entropy": "s", "quant8": "^", "fp16": "v"}
    for stage2 in (False, True):
        for codec, marker in markers.items():
            points = [r for r in rows if r.payload == codec and r.method.endswith(STAGE2_SUFFIX) == stage2]
            if points:
                ax.scatter(
                    [r.bytes_per_frame for r in points],
                    [100 * r.map for r in points],
                    marker="*" if stage2 else marker,
                    s=120 if stage2 else None,
                    label=f"SC2 students{', stage 2' if stage2 else ''}, {codec} codec",
                    zorder=3,
                )
    raw = next((r for r in rows if r.payload == "raw"), None)
    if raw:
        ax.axhline(100 * raw.map, color="black", lw=0.8, ls="--", label="teacher on raw frames")
    ax.set_xscale("log")
    ax.set_xlabel("bytes per frame (log)")
    ax.set_ylabel("mAP@[.5:.95] (%)")
    ax.set_title("Rate against accuracy, 640x480 synthetic frames")
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sc2_split.evaluation", description=__doc__)
    p.add_argument("--count", type=int, default=200, help="held-out frames")
    p.add_argument("--split", default="test")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("docs"))
    args = p.parse_args(argv)
    rows = evaluate(args.count, args.split, args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, args.count, args.split)
    (args.out / "rate_accuracy.md").write_text(table)
    (args.out / "rate_accuracy.json").write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=1))
    plot(rows, args.out / "rate_accuracy.png")
    print(table)
    print(f"wrote {args.out}/rate_accuracy.md, .json, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
