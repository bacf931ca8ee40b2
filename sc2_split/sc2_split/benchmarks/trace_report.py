"""The link-trace benchmark's table (Markdown, JSON) and timeline plot (link rate and bytes sent,
latency, and where each frame's detections came from), with the issue's targets checked against the
adaptive path's figures."""

import json
from pathlib import Path
from typing import Any

from sc2_split.benchmarks.trace_metrics import FrameRecord

ADAPTIVE, FIXED = "adaptive split", "fixed-rate split"


def targets(results: dict[str, dict[str, Any]], about: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, figure, met) of each of the issue's targets the run can check: the adaptive path
    against the budget, the fallback's allowance and the fixed rate's mAP."""
    if ADAPTIVE not in results:
        return []
    adaptive = results[ADAPTIVE]["summary"]
    allowed_gap_s = about["fallback_after_ms"] / 1e3 + 1.0 / about["camera_hz"]
    rows = [
        (
            f"at least 95% of frames answered within {about['latency_budget_ms']:g} ms",
            f"{100 * adaptive['within_budget']:.1f}%",
            adaptive["within_budget"] >= 0.95,
        ),
        (
            f"no gap without detections longer than fallback_after_ms plus one frame ({allowed_gap_s:g} s)",
            f"longest {adaptive['longest_gap_s']:.2f} s",
            adaptive["longest_gap_s"] <= allowed_gap_s,
        ),
    ]
    if FIXED in results:
        fixed = results[FIXED]["summary"]["map"]
        rows.append(
            (
                "mAP over the trace at least the best fixed rate's",
                f"{100 * adaptive['map']:.1f} against {100 * fixed:.1f}",
                adaptive["map"] >= fixed,
            )
        )
    return rows


def markdown(results: dict[str, dict[str, Any]], about: dict[str, Any]) -> str:
    trace = ", ".join("down" if p["mbit"] == 0 else f"{p['mbit']:g} Mbit/s" for p in about["trace"])
    seconds = "/".join(f"{p['seconds']:g}" for p in about["trace"])
    lines = [
        f"Link trace {trace} ({seconds} s), camera at {about['camera_hz']:g} Hz, "
        f"latency_budget_ms {about['latency_budget_ms']:g}, "
        f"fallback_after_ms {about['fallback_after_ms']:g}, "
        f"JPEG q{about['jpeg_quality']}, H.264 {about['h264_kbit']:g} kbit/s "
        f"(GOP {about['h264_gop_s']:g} s). Machine: {about['machine']}; load average (1 min) "
        f"{about['load_average_at_start'][0]:.1f} at the start, {about['load_average_at_end'][0]:.1f} "
        f"at the end; the whole run took {about['wall_s']:.0f} s.",
        "",
        "| path | detections/s | p50 ms | p99 ms | within budget | longest gap s | mAP@[.5:.95] | "
        "local | answered/sent |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for path, result in results.items():
        s = result["summary"]
        lines.append(
            f"| {path} | {s['detections_per_s']:.2f} | {s['p50_ms']:.0f} | {s['p99_ms']:.0f} | "
            f"{100 * s['within_budget']:.1f}% | {s['longest_gap_s']:.2f} | {100 * s['map']:.1f} | "
            f"{100 * s['local_share']:.0f}% | {s['answered']}/{s['sent']} |"
        )
    checked = targets(results, about)
    if checked:
        lines += ["", "| target (adaptive split) | figure | status |", "|---|---|---|"]
        lines += [f"| {t} | {figure} | {'met' if met else 'not met'} |" for t, figure, met in checked]
    return "\n".join(lines) + "\n"


def frame_rows(frames: list[FrameRecord]) -> list[dict[str, Any]]:
    return [
        {
            "image_id": f.image_id,
            "sent_s": round(f.sent_s, 4),
            "payload_bytes": f.payload_bytes,
            "point": f.point,
            "latency_ms": None if f.latency_ms is None else round(f.latency_ms, 1),
            "source": f.source,
            "detections": len(f.scores),
        }
        for f in frames
    ]


def write_report(results: dict[str, dict[str, Any]], about: dict[str, Any], out: Path, name: str) -> Path:
    """out/name.md, .json and .png; returns the Markdown file."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(markdown(results, about))
    document = {
        "about": about,
        "targets": [{"target": t, "figure": f, "met": m} for t, f, m in targets(results, about)],
        "paths": {
            path: {"summary": r["summary"], "counters": r["counters"], "frames": frame_rows(r["frames"])}
            for path, r in results.items()
        },
    }
    (out / f"{name}.json").write_text(json.dumps(document, indent=1))
    plot(results, about, out / f"{name}.png")
    return out / f"{name}.md"


def plot(results: dict[str, dict[str, Any]], about: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate_ax, latency_ax, source_ax) = plt.subplots(
        3, 1, figsize=(11, 9), sharex=True, gridspec_kw={"height_ratios": [2, 3, 2]}
    )
    edges, rates, t = [0.0], [], 0.0
    for phase in about["trace"]:
        t += phase["seconds"]
        edges.append(t)
        rates.append(max(phase["mbit"], 0.01))  # down, drawn at the bottom of the log axis
    rate_ax.stairs(rates, edges, color="black", lw=1.5, label="link (Mbit/s)")
    rate_ax.set_yscale("log")
    rate_ax.set_ylabel("link Mbit/s (log)")
    sent_ax = rate_ax.twinx()
    colors = dict(zip(results, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for name, result in results.items():
        frames = [f for f in result["frames"] if f.payload_bytes]
        if frames:
            sent_ax.plot([f.sent_s for f in frames], [f.payload_bytes / 1e3 for f in frames], ".",
                         ms=3, color=colors[name], label=f"{name}: KB sent")  # fmt: skip
    sent_ax.set_yscale("log")
    sent_ax.set_ylabel("KB per frame sent (log)")
    sent_ax.legend(fontsize=7, loc="lower left")
    rate_ax.set_title(f"Link trace: {about['machine']}", fontsize=9)

    for name, result in results.items():
        answered = [f for f in result["frames"] if f.latency_ms is not None]
        latency_ax.plot([f.sent_s for f in answered], [f.latency_ms for f in answered], ".-", ms=3, lw=0.6,
                        color=colors[name], label=name)  # fmt: skip
    latency_ax.axhline(about["latency_budget_ms"], color="red", ls=":", lw=1, label="latency budget")
    latency_ax.set_yscale("log")
    latency_ax.set_ylabel("detections latency ms (log)")
    latency_ax.legend(fontsize=7, loc="upper left")

    markers = {"edge": ("o", "tab:blue"), "local": ("s", "tab:orange"), "": ("x", "tab:red")}
    for row, result in enumerate(results.values()):
        for source, (marker, color) in markers.items():
            xs = [f.sent_s for f in result["frames"] if f.source == source]
            label = (
                {"edge": "edge", "local": "local detector", "": "no detections"}[source] if row == 0 else None
            )
            source_ax.scatter(xs, [row] * len(xs), marker=marker, s=10, color=color, label=label)
    source_ax.set_yticks(range(len(results)), list(results), fontsize=8)
    source_ax.set_ylim(len(results) - 0.5, -0.5)
    source_ax.set_xlabel("seconds into the trace (frame sent)")
    source_ax.legend(fontsize=7, loc="lower right", ncol=3)
    for ax in (rate_ax, latency_ax, source_ax):
        for edge in edges[1:-1]:
            ax.axvline(edge, color="grey", lw=0.5)
        ax.grid(True, which="major", lw=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
