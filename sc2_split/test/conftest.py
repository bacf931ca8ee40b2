"""Fixtures shared by the tests that start ROS 2 processes."""

import os
import secrets

import pytest


@pytest.fixture
def ros_env() -> dict[str, str]:
    """Environment for child processes: a DDS domain of their own, discovery kept on this machine."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(1 + secrets.randbelow(100))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # Jazzy and newer
    env["ROS_LOCALHOST_ONLY"] = "1"  # Humble
    env["PYTHONUNBUFFERED"] = "1"
    return env
