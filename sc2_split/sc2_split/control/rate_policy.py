"""Which rate to send at: the most accurate operating point whose predicted round trip stays under
the latency budget, with hysteresis so that a link near a threshold does not make the head flap.

Down is immediate once the current point is predicted over budget, to the most accurate point
predicted within it (or the smallest, if none is), and so is a frame unanswered for longer than the budget:
a link too narrow for even one frame of the current rate sends no feedback to go by. Up is one step
at a time, and only after the next point has been predicted
within `up_margin` of the budget for `up_hold_s`. Every decision waits for `min_frames` answered
frames at the current point, so each one rests on feedback from the rate actually sent.
"""

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from sc2_split.control.link_estimate import LinkEstimator
from sc2_split.control.operating_points import OperatingPoint, ladder

# A send time rebuilt from feedback (received less round trip) is this close to the stamp sent.
STAMP_TOLERANCE_S = 1e-3


@dataclass(frozen=True)
class Switch:
    """One change of rate, for the log and the counters."""

    at_s: float
    old: OperatingPoint
    new: OperatingPoint
    predicted_ms: float  # the new point's predicted round trip when the policy chose it

    @property
    def down(self) -> bool:
        return self.new.bytes_per_frame < self.old.bytes_per_frame

    def describe(self) -> str:
        way = "down (link narrowed)" if self.down else "up (link widened)"
        return (
            f"rate {way}: {self.old.name} -> {self.new.name}, predicted round trip {self.predicted_ms:.0f} ms"
        )


class RatePolicy:
    def __init__(
        self,
        points: Iterable[OperatingPoint],
        latency_budget_ms: float,
        up_margin: float = 0.7,
        up_hold_s: float = 2.0,
        min_frames: int = 4,
    ) -> None:
        if latency_budget_ms <= 0 or not 0 < up_margin <= 1 or up_hold_s < 0 or min_frames < 1:
            raise ValueError(
                f"need latency_budget_ms > 0, 0 < up_margin <= 1, up_hold_s >= 0, min_frames >= 1; got "
                f"{latency_budget_ms}, {up_margin}, {up_hold_s}, {min_frames}"
            )
        self.points = ladder(points)
        self.budget_ms = latency_budget_ms
        self.up_margin = up_margin
        self.up_hold_s = up_hold_s
        self.min_frames = min_frames
        self.index = 0  # the most accurate point until feedback says otherwise
        self.switches_down = 0
        self.switches_up = 0
        self._up_since: float | None = None
        # Stamps (robot clock, s) of the frames sent at the current point, oldest first.
        self._sent: deque[float] = deque(maxlen=1024)

    @property
    def current(self) -> OperatingPoint:
        return self.points[self.index]

    def sent(self, stamp_s: float) -> None:
        """A frame stamped `stamp_s` went out at the current point."""
        self._sent.append(stamp_s)

    def waiting_s(self, now_s: float, link: LinkEstimator) -> float:
        """How long the oldest frame sent at the current point after its newest answered one has
        waited: frames lost on the way are forgiven once a later one comes back."""
        answered = max(
            (
                f.received_s - f.round_trip_ms / 1e3
                for f in link.frames(now_s)
                if f.point == self.current.name
            ),
            default=-math.inf,
        )
        while self._sent and self._sent[0] <= answered + STAMP_TOLERANCE_S:
            self._sent.popleft()
        return now_s - self._sent[0] if self._sent else 0.0

    def expected_bytes(self, point: OperatingPoint, link: LinkEstimator, now_s: float) -> float:
        """The point's measured size scaled by what the recent frames carried against their own
        measured sizes: the measurement is of 640x480 frames, the camera's may differ."""
        nominal = {p.name: p.bytes_per_frame for p in self.points}
        frames = [f for f in link.frames(now_s) if f.point in nominal]
        if not frames:
            return point.bytes_per_frame
        return (
            point.bytes_per_frame
            * sum(f.payload_bytes for f in frames)
            / sum(nominal[f.point] for f in frames)
        )

    def decide(self, now_s: float, link: LinkEstimator, frames_per_s: float = 0.0) -> Switch | None:
        """The switch to make now, if any (already made: `current` is the new point), for a head
        that sends `frames_per_s` (0: a load too light to count)."""
        overdue = self.waiting_s(now_s, link) > self.budget_ms / 1e3
        if not overdue and sum(f.point == self.current.name for f in link.frames(now_s)) < self.min_frames:
            return None
        predicted = [
            link.predicted_round_trip_ms(self.expected_bytes(p, link, now_s), now_s, frames_per_s)
            for p in self.points
        ]
        if overdue or predicted[self.index] > self.budget_ms:
            within = [i for i in range(self.index + 1, len(self.points)) if predicted[i] <= self.budget_ms]
            return self._switch(now_s, within[0] if within else len(self.points) - 1, predicted)
        if self.index > 0 and predicted[self.index - 1] <= self.up_margin * self.budget_ms:
            if self._up_since is None:
                self._up_since = now_s
            if now_s - self._up_since >= self.up_hold_s:
                return self._switch(now_s, self.index - 1, predicted)
        else:
            self._up_since = None
        return None

    def _switch(self, now_s: float, index: int, predicted: list[float]) -> Switch | None:
        self._up_since = None
        if index == self.index:
            return None
        self._sent.clear()
        switch = Switch(now_s, self.current, self.points[index], predicted[index])
        self.index = index
        if switch.down:
            self.switches_down += 1
        else:
            self.switches_up += 1
        return switch
