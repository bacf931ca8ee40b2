"""The workspaces the ROS tests start node processes from: the registry's Kilted wheels
(tools/setup.sh) or the Jazzy leg's (tools/setup.sh jazzy), each in the environment a user gets in a
fresh shell from `source tools/env.sh [jazzy]`, the shipped Fast DDS profile included."""

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOMAIN_VARIABLES = (
    "ROS_DOMAIN_ID",
    "ROS_AUTOMATIC_DISCOVERY_RANGE",
    "ROS_LOCALHOST_ONLY",
    "PYTHONUNBUFFERED",
)


@dataclass(frozen=True)
class Workspace:
    leg: str  # "kilted" or "jazzy"
    env: dict[str, str]
    prefix: Path  # sc2_split's install prefix, for node_process
    python: str


def this_leg() -> str:
    """The distribution this test process runs on: `make test` runs the ROS tests on both."""
    return "jazzy" if Path(sys.prefix).name == ".venv-jazzy" else "kilted"


def workspace(leg: str, ros_env: dict[str, str]) -> Workspace:
    """`leg`'s workspace, joined to the DDS domain of `ros_env`."""
    suffix = "" if leg == "kilted" else f"-{leg}"
    if not (REPO / f"install{suffix}" / "setup.bash").is_file():
        pytest.fail(f"the {leg} workspace is not built: run tools/setup.sh {leg if suffix else ''}")
    fresh_shell = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    script = f"source tools/env.sh {leg if suffix else ''} >&2 && env -0"
    out = subprocess.run(
        ["bash", "-c", script], cwd=REPO, env=fresh_shell, capture_output=True, check=True
    ).stdout
    env = dict(entry.split("=", 1) for entry in out.decode().split("\0") if "=" in entry)
    env.update({name: ros_env[name] for name in DOMAIN_VARIABLES})
    python = shutil.which("python3", path=env["PATH"])
    assert python, f"no python3 in the {leg} workspace's PATH"
    return Workspace(leg, env, REPO / f"install{suffix}" / "sc2_split", python)
