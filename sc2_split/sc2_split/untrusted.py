"""Fields that came from the network, made safe to count, time and print.

A message from another process can hold any value its type allows: a 1 MB string, a sequence number
of 2**64 - 1, a stamp decades away. Nothing here trusts those values to be sensible; each helper
bounds what one message can do to a counter, a statistic or a log line.
"""

import math

UINT64_MAX = 2**64 - 1
# Characters of an untrusted string that reach a log line or a diagnostic value.
SHOWN_CHARS = 64
# No log line about a received message is longer than this many characters.
MAX_LOG_LINE = 1000


def shown(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` quoted and escaped (non-printable characters as repr escapes), cut to `limit` characters."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def bounded_line(line: str, limit: int = MAX_LOG_LINE) -> str:
    """A log line cut to `limit` characters, saying how many were cut."""
    if len(line) <= limit:
        return line
    suffix = f"... ({len(line) - limit} more characters)"
    return line[: limit - len(suffix)] + suffix


def saturating_add(total: int, amount: int) -> int:
    """`total + amount` held within a uint64 message field: a counter that cannot overflow."""
    return max(0, min(UINT64_MAX, total + amount))


def plausible_ms(latency_ms: float, skew_tolerance_ms: float, max_latency_ms: float) -> float:
    """`latency_ms` if two clocks can explain it, else NaN: from at most `skew_tolerance_ms` negative
    (the sender's clock ahead of ours) to at most `max_latency_ms`. NaN values stay out of statistics."""
    if -skew_tolerance_ms <= latency_ms <= max_latency_ms:
        return latency_ms
    return math.nan
