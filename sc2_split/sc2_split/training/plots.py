"""Loss and rate per epoch, one panel per figure kind and one line per model: OUT/<phase>_curves.png."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

_LABELS = {
    "loss": "detection loss",
    "distortion": "distortion (sum of squared errors)",
    "bits": "rate (bits per image)",
}


def plot_history(phase: str, history: list[dict[str, float]], path: Path) -> None:
    kinds = sorted({key.split("/", 1)[1] for row in history for key in row if "/" in key})
    if not kinds:
        return
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds), 3.5), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        models = sorted({key.split("/")[0] for row in history for key in row if key.endswith(f"/{kind}")})
        for model in models:
            points = [(row["epoch"], row[f"{model}/{kind}"]) for row in history if f"{model}/{kind}" in row]
            ax.plot(*zip(*points, strict=True), "o-", label=model, ms=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(_LABELS.get(kind, kind))
        ax.grid(True, lw=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{phase}: mean per epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
