"""Nodes started as separate processes the way the launch files start them: the installed
executable with a shipped parameter file and overrides. For the demo and the tests, where
`ros2 launch` may be missing."""

import os
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from ament_index_python.packages import get_package_prefix

from sc2_split.child_process import interrupt


def isolated_ros_env(discovery_range: str = "LOCALHOST") -> dict[str, str]:
    """This environment with a DDS domain of its own, so that runs beside each other never mix.

    LOCALHOST keeps discovery on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE on Jazzy and newer,
    ROS_LOCALHOST_ONLY on Humble); SUBNET reaches other hosts, e.g. network namespaces.
    """
    env = dict(os.environ, ROS_DOMAIN_ID=str(1 + secrets.randbelow(100)), PYTHONUNBUFFERED="1")
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = discovery_range
    env["ROS_LOCALHOST_ONLY"] = "1" if discovery_range == "LOCALHOST" else "0"
    return env


def node_command(
    executable: str,
    params_file: str,
    overrides: dict[str, object],
    ros_args: Sequence[str] = (),
    prefix: Path | None = None,
) -> list[str]:
    """`ros_args` go after the parameters, e.g. ["--enclave", "/sc2_split/head"] (docs/sros2.md).
    `prefix`: the install prefix of another workspace's sc2_split (another distribution's); by default
    this process's."""
    prefix = prefix or Path(get_package_prefix("sc2_split"))
    command = [
        str(prefix / "lib" / "sc2_split" / executable),
        "--ros-args",
        "--params-file",
        str(prefix / "share" / "sc2_split" / "config" / params_file),
    ]
    for name, value in overrides.items():
        command += ["-p", f"{name}:={value}"]
    return command + list(ros_args)


@contextmanager
def running(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """`command` runs until the block ends, then gets Ctrl-C (SIGINT), as `ros2 launch` sends it."""
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        interrupt(process)


def node_process(
    executable: str,
    params_file: str,
    overrides: dict[str, object],
    env: dict[str, str],
    log: Path,
    ros_args: Sequence[str] = (),
    prefix: Path | None = None,
) -> AbstractContextManager[subprocess.Popen]:
    """An installed node with a shipped parameter file, running until the block ends."""
    return running(node_command(executable, params_file, overrides, ros_args, prefix), env, log)
