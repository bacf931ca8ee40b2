"""What the link carries, estimated from the feedback the robot sees: the round trip of each answered
frame, the bytes it carried, and the frames the tail says it never saw.

Transfer time is the round trip less the part that is not the link's (the head's and tail's work), so the
estimate is in bytes per second and holds for every rate: a prediction for another rate scales its
bytes by the same link. Queueing on a congested link shows up as longer transfers, hence a lower
estimate, which is what the rate policy should react to.
"""

import math
from collections import deque
from dataclasses import dataclass

# A transfer reported shorter than this (clock granularity, a tiny payload) is taken as this long.
MIN_TRANSFER_MS = 0.1


@dataclass(frozen=True)
class FrameFeedback:
    """One answered frame, as the robot sees it."""

    received_s: float  # robot clock (monotonic), when its detections came back
    point: str  # the operating point (model id) that coded it
    payload_bytes: int
    round_trip_ms: float  # image stamp to detections back, both on the robot's clock
    compute_ms: float  # the round trip's part that is not the link's: the head's and tail's work, waits
    tail_missed_frames: int  # as SplitStats carries it: since the tail started


class LinkEstimator:
    """The last `window` answered frames no older than `max_age_s`: their throughput, the share of
    frames lost on the way, and the round trip predicted for a payload of a given size."""

    def __init__(self, window: int = 16, max_age_s: float = 5.0) -> None:
        if window < 1 or max_age_s <= 0:
            raise ValueError(f"window must be 1 or more and max_age_s positive, not {window}, {max_age_s}")
        self.max_age_s = max_age_s
        self._frames: deque[tuple[FrameFeedback, int]] = deque(maxlen=window)
        self._last_missed: int | None = None

    def observe(self, feedback: FrameFeedback) -> None:
        missed = feedback.tail_missed_frames
        # A smaller count is a restarted tail: nothing lost in between that we could know of.
        lost = 0 if self._last_missed is None or missed < self._last_missed else missed - self._last_missed
        self._last_missed = missed
        self._frames.append((feedback, lost))

    def frames(self, now_s: float) -> list[FrameFeedback]:
        """The answered frames the estimate is made of at `now_s`."""
        return [f for f, _ in self._recent(now_s)]

    def throughput_bytes_per_s(self, now_s: float) -> float | None:
        """Bytes carried per second of transfer: total bytes over total transfer time, so a few
        fast small frames cannot hide slow large ones. None without recent feedback."""
        recent = self._recent(now_s)
        if not recent:
            return None
        transfer_s = sum(max(f.round_trip_ms - f.compute_ms, MIN_TRANSFER_MS) for f, _ in recent) / 1e3
        return sum(f.payload_bytes for f, _ in recent) / transfer_s

    def loss_fraction(self, now_s: float) -> float:
        """Of the frames sent over the window, the share the tail never saw."""
        recent = self._recent(now_s)
        lost = sum(n for _, n in recent)
        return lost / (lost + len(recent)) if recent else 0.0

    def compute_ms(self, now_s: float) -> float | None:
        recent = self._recent(now_s)
        return sum(f.compute_ms for f, _ in recent) / len(recent) if recent else None

    def predicted_round_trip_ms(self, payload_bytes: float, now_s: float, frames_per_s: float = 0.0) -> float:
        """Round trip of frames of `payload_bytes` sent `frames_per_s`: the same work, and their bytes
        at the carried rate, stretched by the link's load as a single queue's sojourn is (transfer
        over one less the load); a load of one or more grows a queue without end (infinite). A lossy
        link carries only its delivered share of what is sent, so loss lowers the rate. Infinite
        without recent feedback too: nothing says the link carries anything."""
        throughput = self.throughput_bytes_per_s(now_s)
        compute = self.compute_ms(now_s)
        if throughput is None or compute is None:
            return math.inf
        carried = throughput * max(1.0 - self.loss_fraction(now_s), 1e-3)
        load = payload_bytes * frames_per_s / carried
        if load >= 1.0:
            return math.inf
        return compute + 1e3 * payload_bytes / carried / (1.0 - load)

    def _recent(self, now_s: float) -> list[tuple[FrameFeedback, int]]:
        return [(f, n) for f, n in self._frames if now_s - f.received_s <= self.max_age_s]
