"""Sequence accounting from untrusted numbers: per sender, bounded per message, never past uint64."""

from hypothesis import given
from hypothesis import strategies as st
from sc2_split.sequence_gaps import SequenceGaps
from sc2_split.untrusted import UINT64_MAX

U64 = st.integers(0, UINT64_MAX)


def test_gaps_count_per_sender_and_unserved_messages_are_not_missed() -> None:
    gaps = SequenceGaps(max_gap=100)
    for sequence in (0, 1, 4):  # 2 and 3 never arrived
        gaps.observe("robot1", sequence, head_dropped_frames=sequence)
    gaps.observe("robot2", 50, head_dropped_frames=7)  # a new sender: nothing missed before its first
    gaps.unserved("robot1")  # number 5 arrived and was rejected
    gaps.observe("robot1", 6, head_dropped_frames=9)
    assert (gaps.missed, gaps.jumps, gaps.restarts, gaps.senders) == (2, 0, 0, 2)
    assert gaps.head_dropped_frames == 9 + 7


def test_jumps_and_restarts_add_no_missed_frames() -> None:
    gaps = SequenceGaps(max_gap=10)
    gaps.observe("robot", UINT64_MAX, 0)
    gaps.observe("robot", 0, 0)  # restarted, or wrapped
    gaps.observe("robot", 12, 0)  # 11 missing: a jump
    gaps.observe("robot", 12, 0)  # a repeat counts as a restart
    assert (gaps.missed, gaps.jumps, gaps.restarts) == (0, 1, 2)


def test_senders_beyond_the_limit_forget_the_oldest() -> None:
    gaps = SequenceGaps(max_gap=10, max_senders=3)
    for sender in range(10):
        gaps.observe(sender, 0, 1)
    assert gaps.senders == 3 and gaps.head_dropped_frames == 3


@given(
    max_gap=st.integers(0, 2**62),
    events=st.lists(st.tuples(st.integers(0, 3), U64 | st.none(), U64), max_size=200),
)
def test_counters_stay_within_uint64_and_each_message_adds_at_most_max_gap(
    max_gap: int, events: list[tuple[int, int | None, int]]
) -> None:
    """None: an unserved message. However forged the numbers, counters stay uint64 and bounded."""
    gaps = SequenceGaps(max_gap)
    for sender, sequence, dropped in events:
        before = (gaps.missed, gaps.jumps, gaps.restarts)
        if sequence is None:
            gaps.unserved(sender)
            assert (gaps.missed, gaps.jumps, gaps.restarts) == before
        else:
            gaps.observe(sender, sequence, dropped)
            assert 0 <= gaps.missed - before[0] <= max_gap
        for value in (gaps.missed, gaps.jumps, gaps.restarts, gaps.head_dropped_frames):
            assert isinstance(value, int) and 0 <= value <= UINT64_MAX
