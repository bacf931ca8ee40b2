"""Untrusted strings and times, made safe to print and to time."""

import math

from hypothesis import given
from hypothesis import strategies as st
from sc2_split.untrusted import (
    MAX_LOG_LINE,
    SHOWN_CHARS,
    UINT64_MAX,
    bounded_line,
    plausible_ms,
    saturating_add,
    shown,
)


@given(st.text())
def test_shown_text_is_bounded_printable_and_says_it_was_cut(text: str) -> None:
    out = shown(text)
    assert out.isprintable() or all(c.isprintable() or c == " " for c in out)
    assert "\n" not in out and "\x00" not in out
    assert len(out) <= 4 * SHOWN_CHARS + 40
    if len(text) > SHOWN_CHARS:
        assert f"({len(text)} characters)" in out


def test_a_megabyte_string_is_shown_in_a_short_line() -> None:
    out = shown("x" * 1_000_000 + "\n\x1b[2J")
    assert len(out) < 100 and out.endswith("(1000005 characters)")


@given(st.text(max_size=5000))
def test_bounded_lines_keep_short_ones_and_cut_long_ones(line: str) -> None:
    out = bounded_line(line)
    assert len(out) <= MAX_LOG_LINE
    assert (out == line) == (len(line) <= MAX_LOG_LINE)


@given(st.integers(0, UINT64_MAX), st.integers(-(2**70), 2**70))
def test_saturating_add_stays_within_uint64(total: int, amount: int) -> None:
    assert 0 <= saturating_add(total, amount) <= UINT64_MAX


def test_implausible_latencies_are_nan() -> None:
    assert plausible_ms(12.5, 1000.0, 60000.0) == 12.5
    assert plausible_ms(-900.0, 1000.0, 60000.0) == -900.0  # the robot's clock 0.9 s ahead
    for latency in (-1.8e12, 1.8e12, -1001.0, 60001.0, math.inf, math.nan):
        assert math.isnan(plausible_ms(latency, 1000.0, 60000.0))
