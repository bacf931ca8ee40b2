"""The figures of tools/gpu_training.sh as one JSON: steps, steady steps/s and the time to the first
step of the main run and the baseline (from their logs), the ratio of their steady rates, mAP and
bytes per frame of the main run's students (its metrics.json), and the bundled students' figures
(models/demo/metrics.json: today's run) beside them.

Steady steps/s is counted between the first log line at least `--settle` seconds into the budget
and the last one, so that start-up (workers, the first batch, kernel selection) is left out; the
old code logs whole seconds, so its rate is good to about 1 s over the window.
"""

import argparse
import json
import re
from pathlib import Path
from typing import Any

# "students it 82, 20 s: ..." (before the engine) and "students it 257, epoch 1, 40.3 s, ..." (now).
_LINE = re.compile(r"students it (\d+), (?:epoch \d+, )?([\d.]+) s")
_BUNDLED = Path(__file__).resolve().parents[1] / "sc2_split/sc2_split/models/demo/metrics.json"
# The budget each bundled student trained with, by the command recorded beside it.
_SECONDS = re.compile(r"--student-seconds (\d+)")
_MAIN_FIGURES = ("iterations", "map", "map_50", "bytes_per_frame", "train_distortion")


def log_figures(log: str, settle: float) -> dict[str, Any]:
    """Steps, first-step time and steady steps/s from a run's log lines."""
    points = [(int(it), float(t)) for it, t in _LINE.findall(log)]
    if not points:
        return {"steps": 0}
    steps, seconds = points[-1]
    figures: dict[str, Any] = {"steps": steps, "seconds": seconds, "log_points": len(points)}
    if points[0][0] == 1:
        figures["first_step_s"] = points[0][1]
    start = next((p for p in points if p[1] >= settle and p != points[-1]), None)
    if start is not None and seconds > start[1]:
        figures["steady_steps_per_s"] = round((steps - start[0]) / (seconds - start[1]), 2)
        figures["steady_window_s"] = [start[1], seconds]
    return figures


def today(names: list[str]) -> dict[str, Any]:
    """The bundled students of these names as models/demo/metrics.json records them."""
    bundled = json.loads(_BUNDLED.read_text())
    rows = {}
    for name in names:
        entry = bundled["students"].get(name)
        if entry is None:
            continue
        command = entry.get("command", bundled.get("students_command", ""))
        found = _SECONDS.search(command)
        row = {k: entry.get(k) for k in ("iterations", "map", "map_50", "bytes_per_frame")}
        if found:
            row["seconds"] = float(found.group(1))
            row["steps_per_s"] = round(entry["iterations"] / row["seconds"], 2)
        rows[name] = {**row, "command": command, "val_frames": bundled.get("val_frames")}
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--machine", required=True)
    p.add_argument("--main-log", type=Path, required=True, help="the main run's train.log")
    p.add_argument("--main-metrics", type=Path, required=True, help="the main run's metrics.json")
    p.add_argument("--main-command", required=True)
    p.add_argument("--main-wall", type=float, required=True, help="its command's wall seconds")
    p.add_argument("--baseline", nargs=2, metavar=("LOG", "WALL"), help="the pre-engine run's log")
    p.add_argument("--baseline-command", default="")
    p.add_argument("--settle", type=float, default=15.0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    metrics = json.loads(args.main_metrics.read_text())["students"]
    main_run = {
        "command": args.main_command,
        "command_wall_s": args.main_wall,
        **log_figures(args.main_log.read_text(), args.settle),
        "students": {name: {k: m.get(k) for k in _MAIN_FIGURES} for name, m in metrics.items()},
    }
    summary: dict[str, Any] = {"machine": args.machine, "main": main_run, "today": today(list(metrics))}
    if args.baseline:
        log, wall = args.baseline
        base = {"command": args.baseline_command, "command_wall_s": float(wall)}
        summary["baseline"] = {**base, **log_figures(Path(log).read_text(), args.settle)}
        rates = (main_run.get("steady_steps_per_s"), summary["baseline"].get("steady_steps_per_s"))
        if all(rates):
            summary["steady_steps_per_s_main_over_baseline"] = round(rates[0] / rates[1], 3)
    args.out.write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
