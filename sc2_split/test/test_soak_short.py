"""A short soak (`python -m sc2_split.benchmarks.soak` runs the long one): the head and the tail
under a steady camera, their resident memory sampled every second; after warm-up it must not grow.

Long: about 55 s (45 s of frames, plus start-up). A short run is noisy, so the figure is the slope
of all samples after warm-up (least squares), not the difference of two of them."""

from pathlib import Path

import pytest
from sc2_split.testing.soak import growth_percent
from split_fixtures import soak_split_nodes

RATE_HZ = 10.0
SECONDS = 45.0
MAX_GROWTH_PERCENT = 5.0


def test_node_memory_stays_flat_under_a_steady_camera(
    exported_head: dict[str, str], ros_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    report = soak_split_nodes(exported_head, ros_env, monkeypatch, tmp_path, RATE_HZ, SECONDS)
    assert report.end_to_end_ms, "no frame came through"
    for name, samples in report.rss_mb.items():
        assert growth_percent(samples) < MAX_GROWTH_PERCENT, (name, samples)
    assert report.counters["tail"]["failed"] == report.counters["head"]["failed_frames"] == 0
