"""When the edge stops answering, the robot detects for itself; and whichever side answers, each
frame gets one detections message.

The fallback starts when no detections have come back for `fallback_after_ms` and stops at the
edge's first answer, so an edge that comes back costs no more than one round trip of local frames.
"""

import heapq


class Fallback:
    """Split or local, from the times the edge answered (robot clock, seconds)."""

    def __init__(self, fallback_after_ms: float, now_s: float) -> None:
        if fallback_after_ms <= 0:
            raise ValueError(f"fallback_after_ms must be positive, not {fallback_after_ms}")
        self.after_s = fallback_after_ms / 1e3
        # From start-up: an edge that never answers is as gone as one that stopped.
        self.last_answer_s = now_s
        self.local = False
        self.starts = 0
        self.stops = 0

    def edge_answered(self, now_s: float) -> bool:
        """Records an answer; True if it ends a fallback."""
        self.last_answer_s = max(self.last_answer_s, now_s)
        if not self.local:
            return False
        self.local = False
        self.stops += 1
        return True

    def update(self, now_s: float) -> bool:
        """True if the fallback starts now: the edge has been silent for longer than allowed."""
        if self.local or now_s - self.last_answer_s <= self.after_s:
            return False
        self.local = True
        self.starts += 1
        return True


class OncePerFrame:
    """Lets through the first detections of each frame (its image stamp, in nanoseconds) and refuses
    every later one, from either source. Remembers the last `max_frames` stamps; a stamp older than
    all of them is refused too, since it may be one it has forgotten."""

    def __init__(self, max_frames: int = 1024) -> None:
        if max_frames < 1:
            raise ValueError(f"max_frames must be 1 or more, not {max_frames}")
        self.max_frames = max_frames
        self._seen: set[int] = set()
        self._order: list[int] = []
        self._forgotten_up_to: int | None = None
        self.refused = 0

    def first(self, stamp_ns: int) -> bool:
        stale = self._forgotten_up_to is not None and stamp_ns <= self._forgotten_up_to
        if stale or stamp_ns in self._seen:
            self.refused += 1
            return False
        self._seen.add(stamp_ns)
        heapq.heappush(self._order, stamp_ns)
        if len(self._order) > self.max_frames:
            oldest = heapq.heappop(self._order)
            self._seen.discard(oldest)
            self._forgotten_up_to = max(oldest, self._forgotten_up_to or oldest)
        return True
