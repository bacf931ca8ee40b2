"""Frames each head says it sent and this tail never saw, from the heads' sequence numbers.

A head numbers its bottlenecks 0, 1, 2, ... from its start, so a gap between two numbers of one
sender is frames that never arrived (lost on the link, or replaced in the reader's newest-only queue).
Sequence numbers are untrusted: they count per sender (a DDS publisher, named by DDS, not by the
message), only accepted messages carry them, and one message adds at most `max_gap` missed frames:
- messages of a sender not served (rejected, or failed on) since its last accepted one are in the gap,
  and not missed;
- a gap wider than `max_gap` besides them is a jump: counted, and the count goes on from it;
- a number at or below the last is a restart of that head (or a wrap past 2**64 - 1): counted, and the
  count goes on from it.
"""

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from sc2_split.untrusted import saturating_add

# Senders remembered at once; the longest-silent one is forgotten first.
MAX_SENDERS = 1024


@dataclass
class _Sender:
    sequence: int | None = None  # of its last accepted message
    head_dropped_frames: int = 0
    unserved: int = 0  # since its last accepted message


class SequenceGaps:
    def __init__(self, max_gap: int, max_senders: int = MAX_SENDERS) -> None:
        if max_gap < 0:
            raise ValueError(f"max_gap must be 0 or more, not {max_gap}")
        self.max_gap = max_gap
        self.max_senders = max_senders
        self.missed = 0
        self.jumps = 0
        self.restarts = 0
        self._senders: OrderedDict[Hashable, _Sender] = OrderedDict()

    def observe(self, sender: Hashable, sequence: int, head_dropped_frames: int) -> None:
        """One accepted bottleneck of `sender`, with the head's own count of dropped camera frames."""
        state = self._take(sender)
        if state.sequence is not None:
            gap = sequence - state.sequence - 1
            if gap < 0:
                self.restarts = saturating_add(self.restarts, 1)
            elif gap - state.unserved > self.max_gap:
                self.jumps = saturating_add(self.jumps, 1)
            else:
                self.missed = saturating_add(self.missed, max(0, gap - state.unserved))
        state.sequence, state.head_dropped_frames, state.unserved = sequence, head_dropped_frames, 0

    def unserved(self, sender: Hashable) -> None:
        """One bottleneck of `sender` rejected or failed on: only its DDS identity counts, none of its
        fields."""
        state = self._take(sender)
        state.unserved = saturating_add(state.unserved, 1)

    @property
    def senders(self) -> int:
        return len(self._senders)

    @property
    def head_dropped_frames(self) -> int:
        """The camera frames the heads say they dropped, summed over the senders remembered."""
        total = 0
        for state in self._senders.values():
            total = saturating_add(total, state.head_dropped_frames)
        return total

    def _take(self, sender: Hashable) -> _Sender:
        """The sender's state, made the most recent; the oldest is forgotten beyond max_senders."""
        state = self._senders.pop(sender, None) or _Sender()
        self._senders[sender] = state
        if len(self._senders) > self.max_senders:
            self._senders.popitem(last=False)
        return state
