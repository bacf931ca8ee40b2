"""Bottleneck messages cross DDS between two processes of the built workspace."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
PEERS = Path(__file__).with_name("dds_peers.py")


def test_bottleneck_messages_cross_between_two_processes(ros_env: dict[str, str]) -> None:
    count = 20
    listener = subprocess.Popen(
        [sys.executable, str(PEERS), "listen", str(count), "60"],
        env=ros_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    talker = subprocess.run(
        [sys.executable, str(PEERS), "talk", str(count)],
        env=ros_env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    out, err = listener.communicate(timeout=90)
    assert talker.returncode == 0, talker.stderr
    assert listener.returncode == 0, err
    sent = [json.loads(line) for line in talker.stdout.splitlines()]
    received = [json.loads(line) for line in out.splitlines()]
    assert len(sent) == count
    assert received == sent
    assert max(m["size"] for m in received) > 64_000
