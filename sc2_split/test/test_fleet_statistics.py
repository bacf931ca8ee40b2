"""The fleet benchmark's reading of Triton's statistics: what the server did between two readings;
its robots' camera phases; whether CUDA MPS runs."""

import json
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

from sc2_split.benchmarks.fleet import RATE_HZ, camera_phases, cuda_mps_running, server_window


def test_the_window_is_the_difference_of_two_readings() -> None:
    before = Counter({"frames": 10, "server_ns": 20_000_000, "queue_ns": 10_000_000})
    before.update({"batches/8": 1, "execute_ns/8": 5_000_000})
    after = Counter(
        {
            "frames": 50,
            "server_ns": 220_000_000,
            "queue_ns": 90_000_000,
            "batches/8": 2,
            "execute_ns/8": 10_000_000,
            "batches/16": 2,
            "execute_ns/16": 30_000_000,
        }
    )
    window = server_window(before, after)
    assert window["batches"] == 3 and window["batch_sizes"] == {8: 1, 16: 2}
    assert window["mean_batch"] == 40 / 3
    assert window["server_ms"] == 5.0  # 200 ms over the window's 40 frames
    assert window["queue_ms"] == 2.0
    assert window["execute_ms_per_batch"] == 35 / 3


def test_a_window_without_batches_says_so() -> None:
    window = server_window(Counter(), Counter())
    assert window["batches"] == 0 and window["batch_sizes"] == {}
    assert window["mean_batch"] != window["mean_batch"]  # NaN
    assert window["queue_ms"] != window["queue_ms"]


def test_camera_phases_are_plain_floats_within_one_period() -> None:
    assert camera_phases(3, "aligned") == [0.0, 0.0, 0.0]
    phases = camera_phases(20, "random")
    assert phases == camera_phases(20, "random") != camera_phases(24, "random")[:20]  # seeded by the count
    assert all(0.0 <= p < 1 / RATE_HZ for p in phases) and len(set(phases)) == 20
    # A robot's counts add up comparisons with its start: numpy's would not go into the JSON report.
    measured = time.time() >= time.time() + phases[0]
    assert json.dumps({"sent": 0 + measured}) == '{"sent": 0}'


def test_cuda_mps_is_seen_while_its_control_daemon_runs(tmp_path: Path) -> None:
    """A process of the daemon's name (here `sleep` under it) marks the rows; none, before and after."""
    assert not cuda_mps_running()
    daemon = tmp_path / "nvidia-cuda-mps-control"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", daemon)
    process = subprocess.Popen([str(daemon), "30"])
    try:  # Popen returns once the program is exec'd, under its name
        assert cuda_mps_running()
    finally:
        process.kill()
        process.wait()
    assert not cuda_mps_running()
