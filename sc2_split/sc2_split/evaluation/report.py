"""The rate-accuracy table (Markdown, JSON) and plot: one curve per method, clean and under loss."""

import dataclasses
import json
from pathlib import Path

from sc2_split.bundled import STAGE2_SUFFIX
from sc2_split.evaluation.latency import LINK_BITS_PER_S, LatencyRow
from sc2_split.evaluation.rate_accuracy import Row


def markdown(rows: list[Row], about: str, metric: str = "mAP", latency: list[LatencyRow] = ()) -> str:
    rates = list(rows[0].lossy_map) if rows else []
    loss_columns = "".join(f" {metric} {rate} lost |" for rate in rates)
    lines = [
        about,
        "",
        f"| method | payload | bytes/frame | {metric}@[.5:.95] | {metric}@.5 |{loss_columns}",
        "|---|---|---:|---:|---:|" + "---:|" * len(rates),
    ]
    for r in rows:
        lossy = "".join(f" {100 * r.lossy_map[rate]:.1f} |" for rate in rates)
        scores = f"{100 * r.map:.1f} | {100 * r.map_50:.1f}"
        lines.append(f"| {r.method} | {r.payload} | {r.bytes_per_frame:,.0f} | {scores} |{lossy}")
    if latency:
        lines += [
            "",
            f"Latency per frame on the robot's side, link at {LINK_BITS_PER_S / 1e6:g} Mbit/s:",
            "",
            "| path | encode ms (median) | frames held | bytes/frame | link ms | total ms |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for t in latency:
            lines.append(
                f"| {t.path} | {t.encode_ms:.1f} | {t.held_frames} | {t.bytes_per_frame:,.0f} | "
                f"{t.link_ms:.1f} | {t.total_ms:.1f} |"
            )
    return "\n".join(lines) + "\n"


def write(
    rows: list[Row],
    latency: list[LatencyRow],
    about: str,
    metric: str,
    out: Path,
    name: str,
    draw: bool = True,
) -> Path:
    """out/name.md, .json and (if `draw`) .png; returns the Markdown file."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(markdown(rows, about, metric, latency))
    document = {
        "about": about,
        "metric": metric,
        "rows": [dataclasses.asdict(r) for r in rows],
        "latency": [dataclasses.asdict(t) for t in latency],
    }
    (out / f"{name}.json").write_text(json.dumps(document, indent=1))
    if draw:
        plot(rows, out / f"{name}.png", metric)
    return out / f"{name}.md"


def curve(row: Row) -> str:
    """The curve a row belongs to: a method family, or one student's point."""
    if (
        row.method.startswith("demo_fp")
        and not row.method.endswith(STAGE2_SUFFIX)
        and row.payload == "entropy"
    ):
        return "SC2 students, stage 1 (entropy)"
    if row.method.startswith("demo_"):
        return f"{row.method} ({row.payload})"
    return row.method


def plot(rows: list[Row], path: Path, metric: str = "mAP") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = list(rows[0].lossy_map) if rows else []
    panels = [("clean", None)] + [(f"{rate} of messages lost", rate) for rate in rates[-1:]]
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 5), sharey=True, squeeze=False)
    curves: dict[str, list[Row]] = {}
    for r in rows:
        if r.payload != "raw":
            curves.setdefault(curve(r), []).append(r)
    styles = {"JPEG": "o-", "WebP": "D-", "H.264 GOP 1 s": "s-", "H.264 intra": "s--", "H.265 GOP 1 s": "^-"}
    styles |= {"H.265 intra": "^--", "SC2 students, stage 1 (entropy)": "P-"}
    raw = next((r for r in rows if r.payload == "raw"), None)
    for ax, (title, rate) in zip(axes[0], panels, strict=True):
        for label, points in curves.items():
            points = sorted(points, key=lambda r: r.bytes_per_frame)
            xs = [r.bytes_per_frame for r in points]
            ys = [100 * (r.map if rate is None else r.lossy_map[rate]) for r in points]
            if label in styles:
                ax.plot(xs, ys, styles[label], label=label, ms=5, lw=1.2)
            else:
                big = label.startswith(("demo_fp", "demo_bq1"))
                ax.scatter(
                    xs,
                    ys,
                    marker="*" if "stage2" in label else "X",
                    s=160 if big else 80,
                    label=label,
                    zorder=3,
                )
        if raw is not None:
            y = 100 * (raw.map if rate is None else raw.lossy_map[rate])
            ax.axhline(y, color="black", lw=0.8, ls=":", label="teacher on raw frames")
        ax.set_xscale("log")
        ax.set_xlabel("bytes per frame (log)")
        ax.set_title(title)
        ax.grid(True, which="both", lw=0.3)
    axes[0][0].set_ylabel(f"{metric}@[.5:.95] (%)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
