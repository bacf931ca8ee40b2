"""A camera far faster than the tail (30 frames/s into a ResNet-50 tail on 2 CPU cores): the nodes
drop frames instead of queueing them, so latency stays bounded and does not grow, memory stays flat,
and every frame is accounted for as encoded, dropped (by the head or the tail) or missed.

Long: about 40 s (25 s of frames, plus start-up)."""

from pathlib import Path

import numpy as np
import pytest
from sc2_split.testing.soak import growth_percent
from split_fixtures import soak_split_nodes

RATE_HZ = 30.0
SECONDS = 25.0
# Most latency beyond the tail's own time for two frames: the camera period, the head, the transport,
# with room for a loaded machine. One frame more in a queue would cost a whole tail period.
HEAD_SHARE_MS = 500.0
# Allowed growth of either node's resident memory after warm-up.
MAX_RSS_GROWTH_PERCENT = 20.0


def test_fast_camera_into_slow_tail_drops_frames_instead_of_queueing_them(
    exported_head: dict[str, str], ros_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    report = soak_split_nodes(exported_head, ros_env, monkeypatch, tmp_path, RATE_HZ, SECONDS)
    # Results of frames sent while the camera ran (the last ones, sent before it stopped, wait longer).
    running = [result for result in report.end_to_end_ms if result[0] <= SECONDS]
    times, latencies = (np.array(column) for column in zip(*running, strict=True))
    intervals_ms = 1e3 * np.diff(times)
    tail_hz = 1e3 / np.median(intervals_ms)
    # The tail is busy all along: the frame it finishes at t[i] is the newest it had at t[i - 1], so
    # its latency is that interval plus the head's share, whatever the tail's speed. A queue anywhere
    # would add whole intervals, more and more of them.
    beyond_ms = latencies[1:] - intervals_ms
    thirds = ", ".join(f"{np.percentile(third, 90):.0f}" for third in np.array_split(latencies, 3))
    print(
        f"tail at {tail_hz:.1f} Hz against {RATE_HZ:g} Hz sent; end-to-end p90 "
        f"{np.percentile(latencies, 90):.0f} ms (by thirds of the run: {thirds}); latency beyond the "
        f"tail's interval: median {np.median(beyond_ms):.0f} ms, at most {beyond_ms.max():.0f} ms"
    )
    assert len(latencies) >= 6, "too few frames through the tail to judge"
    assert tail_hz < RATE_HZ / 2, "the tail keeps up: no back pressure to test"
    assert beyond_ms.max() < HEAD_SHARE_MS, "a frame waited longer than the one before it in the tail"

    for name, samples in report.rss_mb.items():
        assert growth_percent(samples) < MAX_RSS_GROWTH_PERCENT, (name, samples)

    head, tail = report.counters["head"], report.counters["tail"]
    assert head["dropped_frames"] + tail["missed_frames"] + tail["dropped_frames"] > 0
    assert head["bad_frames"] == head["failed_frames"] == 0
    assert head["encoded_frames"] + head["dropped_frames"] == head["received_frames"]
    # The tail counts every bottleneck it served, dropped (decoded, then replaced by a newer one while
    # its network was busy) or saw skipped, all but any the head sent during warm-up before it had
    # matched the tail.
    accounted = tail["frames"] + tail["dropped_frames"] + tail["missed_frames"]
    assert 0 <= head["encoded_frames"] - accounted < report.warmup_frames
    assert tail["rejected"] == tail["failed"] == 0
