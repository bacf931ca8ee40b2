"""Rate control on scripted links, without ROS: the policy moves down when the link narrows, back up
when it widens, and holds still on a steady link; the fallback starts and stops on the edge's silence."""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sc2_split.control.fallback import Fallback, OncePerFrame
from sc2_split.control.link_estimate import FrameFeedback, LinkEstimator
from sc2_split.control.operating_points import OperatingPoint, from_rate_accuracy, ladder
from sc2_split.control.rate_policy import RatePolicy, Switch

RATE_ACCURACY = Path(__file__).resolve().parents[2] / "docs" / "rate_accuracy.json"
STUDENTS = ("demo_fp_beta4.5_stage2", "demo_fp_beta6", "demo_fp_beta20.48", "demo_fp_beta0.32")
# Sizes and mAP of three rungs, as docs/rate_accuracy.md measured the bundled students at 640x480.
LADDER = (
    OperatingPoint("big", 36061.0, 0.83),
    OperatingPoint("mid", 5483.0, 0.80),
    OperatingPoint("small", 1889.0, 0.50),
)
FPS = 10.0
COMPUTE_MS = 60.0
BUDGET_MS = 200.0
MAX_QUEUE_S = 1.0


@dataclass
class SimulatedLink:
    """One queue: each frame's bytes leave at `bytes_per_s` once the frames before it have left, so
    a rate above the link's backs up, as a real bottleneck link does; a frame that would wait longer
    than MAX_QUEUE_S is dropped, as a router's bounded buffer drops it, and the tail counts it."""

    bytes_per_s: float
    jitter: float = 0.0  # each transfer scaled by a factor in [1 - jitter, 1 + jitter]
    free_at_s: float = 0.0
    dropped: int = 0
    in_flight: list[FrameFeedback] = field(default_factory=list)

    def send(self, now_s: float, point: OperatingPoint, scale: float) -> None:
        size = point.bytes_per_frame * scale
        start = max(now_s, self.free_at_s)
        if start - now_s > MAX_QUEUE_S:
            self.dropped += 1
            return
        factor = 1.0 + self.jitter * math.sin(1e3 * now_s)  # deterministic, spread over the range
        self.free_at_s = start + factor * size / self.bytes_per_s
        round_trip_ms = COMPUTE_MS + 1e3 * (self.free_at_s - now_s)
        self.in_flight.append(
            FrameFeedback(
                now_s + round_trip_ms / 1e3, point.name, int(size), round_trip_ms, COMPUTE_MS, self.dropped
            )
        )

    def arrived(self, now_s: float) -> list[FrameFeedback]:
        done = [f for f in self.in_flight if f.received_s <= now_s]
        self.in_flight = [f for f in self.in_flight if f.received_s > now_s]
        return done


def drive(
    policy: RatePolicy, phases: list[tuple[float, float]], jitter: float = 0.0, scale: float = 1.0
) -> tuple[list[tuple[int, Switch]], list[str]]:
    """Frames at FPS through each (seconds, bytes/s) phase in turn: the switches, by phase, and the
    point sent at the end of each phase."""
    estimator = LinkEstimator()
    link = SimulatedLink(phases[0][1], jitter)
    switches = []
    ends = []
    now = 0.0
    for number, (seconds, bytes_per_s) in enumerate(phases):
        link.bytes_per_s = bytes_per_s
        end = now + seconds
        while now < end:
            policy.sent(now)
            link.send(now, policy.current, scale)
            for feedback in link.arrived(now):
                estimator.observe(feedback)
            switch = policy.decide(now, estimator, FPS)
            if switch is not None:
                switches.append((number, switch))
            now += 1.0 / FPS
        ends.append(policy.current.name)
    return switches, ends


def test_the_ladder_keeps_only_points_that_trade_bytes_for_accuracy() -> None:
    dominated = OperatingPoint("dominated", 9000.0, 0.70)  # bigger and worse than "mid"
    assert ladder([LADDER[2], dominated, LADDER[0], LADDER[1]]) == LADDER
    with pytest.raises(ValueError, match="at least one"):
        ladder([])


def test_the_bundled_ladder_comes_from_the_measured_figures() -> None:
    rows = json.loads(RATE_ACCURACY.read_text())
    points = from_rate_accuracy(rows, STUDENTS)
    # beta0.32 is larger than the stage-2 student and less accurate: never worth sending.
    assert [p.name for p in points] == list(STUDENTS[:3])
    assert points[0].accuracy > points[1].accuracy > points[2].accuracy
    with pytest.raises(ValueError, match="no entropy measurement of 'demo_fp_beta99'"):
        from_rate_accuracy(rows, ["demo_fp_beta99"])


def test_the_rate_goes_down_when_the_link_narrows_and_back_up_when_it_widens() -> None:
    policy = RatePolicy(LADDER, BUDGET_MS)
    # 6 MB/s (48 Mbit/s), 150 KB/s (only mid keeps within budget), 40 KB/s (only small), 6 MB/s.
    switches, ends = drive(policy, [(10, 6e6), (10, 150e3), (10, 40e3), (20, 6e6)])
    assert ends == ["big", "mid", "small", "big"]
    assert [s.down for phase, s in switches if phase == 2] == [True]
    assert [s.new.name for phase, s in switches if phase == 3] == ["mid", "big"]
    assert all(s.predicted_ms <= BUDGET_MS for _, s in switches)
    # The first narrowing overshoots: frames of the mid point wait behind the big point's backlog.
    assert policy.switches_down + policy.switches_up <= 6


def test_a_link_too_narrow_for_any_rate_leaves_the_smallest() -> None:
    policy = RatePolicy(LADDER, BUDGET_MS)
    drive(policy, [(5, 1e3)])
    assert policy.current.name == "small"


def test_no_feedback_no_decision() -> None:
    policy = RatePolicy(LADDER, BUDGET_MS)
    assert policy.decide(100.0, LinkEstimator()) is None and policy.current.name == "big"


@settings(max_examples=60, deadline=None)
@given(
    before=st.floats(2e3, 1e7),
    steady=st.floats(2e3, 1e7),
    jitter=st.floats(0.0, 0.1),
    scale=st.floats(0.05, 2.0),
)
def test_a_steady_link_moves_the_rate_one_way_only(
    before: float, steady: float, jitter: float, scale: float
) -> None:
    """After any link, a steady one with jitter of up to 10% settles without flapping: once the rate
    has gone up it never comes down again (a narrowing may overshoot, down and then up, as frames
    of the new rate wait behind the old rate's backlog), and the last 20 s see no switch."""
    policy = RatePolicy(LADDER, BUDGET_MS)
    switches, _ = drive(policy, [(15, before), (30, steady), (20, steady)], jitter, scale)
    downs = [s.down for phase, s in switches if phase == 1]
    assert downs == sorted(downs, reverse=True)
    assert [s for phase, s in switches if phase == 2] == []


def test_loss_counts_against_the_link_and_a_restarted_tail_loses_nothing() -> None:
    estimator = LinkEstimator()
    for i, missed in enumerate((0, 0, 3, 3, 1)):  # 3 frames lost, then the tail restarted
        estimator.observe(FrameFeedback(i * 0.1, "mid", 1000, 110.0, 10.0, missed))
    assert estimator.loss_fraction(0.5) == pytest.approx(3 / 8)
    assert estimator.throughput_bytes_per_s(0.5) == pytest.approx(1e4)
    assert estimator.predicted_round_trip_ms(1000, 0.5) == pytest.approx(10.0 + 100.0 / (5 / 8))
    # Old feedback says nothing of the link now.
    assert estimator.predicted_round_trip_ms(1000, 60.0) == math.inf


def test_fallback_starts_after_silence_and_stops_at_the_first_answer() -> None:
    fallback = Fallback(fallback_after_ms=500, now_s=0.0)
    assert not fallback.update(0.5) and not fallback.local  # not yet longer than 500 ms
    assert fallback.update(0.51) and fallback.local
    assert not fallback.update(2.0)  # already local: starts once
    assert fallback.edge_answered(2.1) and not fallback.local
    assert not fallback.edge_answered(2.2)
    assert (fallback.starts, fallback.stops) == (1, 1)


@given(
    st.lists(st.tuples(st.floats(0.0, 0.3), st.booleans()), max_size=100),
    st.floats(10.0, 1000.0),
)
def test_fallback_is_local_exactly_while_the_edge_has_been_silent_too_long(
    events: list[tuple[float, bool]], after_ms: float
) -> None:
    now = 0.0
    fallback = Fallback(after_ms, now)
    last_answer = now
    for step, answered in events:
        now += step
        if answered:
            fallback.edge_answered(now)
            last_answer = now
        fallback.update(now)
        assert fallback.local == (now - last_answer > after_ms / 1e3)
    assert fallback.stops <= fallback.starts <= fallback.stops + 1


@given(st.lists(st.integers(0, 50), max_size=300), st.integers(1, 64))
def test_each_frame_passes_once_whatever_the_order(stamps: list[int], max_frames: int) -> None:
    once = OncePerFrame(max_frames)
    passed = [s for s in stamps if once.first(s)]
    assert len(passed) == len(set(passed))
    assert once.refused == len(stamps) - len(passed)
    if len(set(stamps)) <= max_frames:
        assert sorted(passed) == sorted(set(stamps))
