"""Per-frame numbers over a logging period, summarized as mean and 90th percentile for the node's log."""

import math
import threading
from collections import defaultdict

import numpy as np


class LatencyWindow:
    """Thread-safe: the head adds from its encoder thread while its timer summarizes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: defaultdict[str, list[float]] = defaultdict(list)
        self._frames = 0

    def add(self, **values: float) -> None:
        """One frame's numbers, by name (e.g. encode=12.5, payload_bytes=8123); NaN marks a number
        that was not measured (an implausible stamp, say) and stays out of the summary."""
        with self._lock:
            self._frames += 1
            for name, value in values.items():
                if not math.isnan(value):
                    self._values[name].append(value)

    def take(self) -> tuple[int, str]:
        """(frames, "name mean/p90, ...") since the last call, and starts a new period."""
        with self._lock:
            frames, values = self._frames, self._values
            self._frames, self._values = 0, defaultdict(list)
        parts = [f"{name} {np.mean(v):.1f}/{np.percentile(v, 90):.1f}" for name, v in values.items()]
        return frames, ", ".join(parts)
