"""`tail_server`, or the PyTriton wheel's `tritonserver` on a written model repository, as a child
process, for the tests and the benchmarks: started on free ports, ready once Triton says so, stopped
with Ctrl-C (SIGINT) as a user would. Without ROS, so that a GPU machine with no ROS can run the
fleet benchmark."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import tritonclient.grpc as grpcclient

from sc2_split.child_process import interrupt


@dataclass(frozen=True)
class ServerPorts:
    http: int
    grpc: int
    metrics: int

    @classmethod
    def free(cls) -> "ServerPorts":
        return cls(*_free_ports(3))

    @property
    def url(self) -> str:
        """What a tail node's `server_url` takes: Triton's gRPC endpoint."""
        return f"localhost:{self.grpc}"

    def args(self) -> list[str]:
        return [
            "--http-port",
            str(self.http),
            "--grpc-port",
            str(self.grpc),
            "--metrics-port",
            str(self.metrics),
        ]


def libpython_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with this interpreter's library folder first on LD_LIBRARY_PATH: Triton's Python backend
    stub loads libpython from there, and the system's (another build) fails every model's load
    (`_thread.RLock ... _recursion_count`)."""
    libdir = sysconfig.get_config_var("LIBDIR")
    paths = [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]
    if not libdir or libdir in paths:
        return dict(env)
    return {**env, "LD_LIBRARY_PATH": ":".join([libdir, *paths])}


def tail_server_command(args: Sequence[str], ports: ServerPorts) -> list[str]:
    return [sys.executable, "-m", "sc2_split.serving.server", *args, *ports.args()]


def wheel_tritonserver_command(
    repository: Path, ports: ServerPorts, workdir: Path, env: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """(command, environment) of the `tritonserver` binary shipped in the PyTriton wheel serving
    `repository`, as PyTriton itself starts it: the Python backend, with this Python version's stub,
    copied into `workdir`, the wheel's libraries on LD_LIBRARY_PATH, and this interpreter's folder
    first on PATH, where the stub's embedded Python looks for its environment (a venv's packages)."""
    from pytriton.utils.distribution import get_libs_path, get_root_module_path, get_stub_path

    dist = get_root_module_path() / "tritonserver"
    backends = workdir / "backends"
    shutil.copytree(dist / "backends", backends, dirs_exist_ok=True)
    shutil.copy(get_stub_path(f"{sys.version_info[0]}.{sys.version_info[1]}"), backends / "python")
    command = [
        str(dist / "bin" / "tritonserver"),
        "--model-repository",
        str(repository),
        "--backend-directory",
        str(backends),
        # Shared memory of its own: another server's stubs on this machine use the default names.
        f"--backend-config=python,shm-region-prefix-name=sc2_{os.getpid()}_{ports.grpc}_",
        *ports.args(),
    ]
    env = libpython_env(env)
    env["LD_LIBRARY_PATH"] += f":{get_libs_path()}"
    paths = [p for p in env.get("PATH", "").split(os.pathsep) if p]
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), *paths])
    return command, env


@contextmanager
def tail_server_process(
    args: Sequence[str],
    ports: ServerPorts,
    env: dict[str, str],
    log: Path,
    models: Sequence[str] = (),
    timeout_s: float = 300.0,
) -> Iterator[subprocess.Popen]:
    """`tail_server ARGS` running until the block ends, entered once Triton and the `models` it serves
    (Triton names: `protocol.triton_model_name`) are ready."""
    with server_process(tail_server_command(args, ports), ports, env, log, models, timeout_s) as process:
        yield process


@contextmanager
def server_process(
    command: list[str],
    ports: ServerPorts,
    env: Mapping[str, str],
    log: Path,
    models: Sequence[str] = (),
    timeout_s: float = 300.0,
) -> Iterator[subprocess.Popen]:
    """A Triton server's `command` running until the block ends, entered once it and its `models` are
    ready on `ports`."""
    with log.open("w") as out:
        # A session of its own, so that `kill_server` takes Triton's own process down with it.
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_ready(ports.url, models, timeout_s, lambda: process.poll() is None, log)
        yield process
    finally:
        interrupt(process)


def kill_server(process: subprocess.Popen) -> None:
    """The server crashes: SIGKILL to PyTriton and the tritonserver it started. (Killing PyTriton alone
    leaves its tritonserver answering on the port for a while.)"""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def wait_until_ready(
    url: str, models: Sequence[str], timeout_s: float, alive: Callable[[], bool], log: Path
) -> None:
    """Until the server at `url` and its `models` are ready (PyTriton's server is ready before it has
    loaded its models); RuntimeError with the log's end if it died or took too long."""
    client = grpcclient.InferenceServerClient(url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError(f"tail_server exited before it was ready:\n{log.read_text()[-4000:]}")
            try:
                if client.is_server_ready() and all(client.is_model_ready(m) for m in models):
                    return
            except Exception:  # not listening yet
                pass
            time.sleep(0.25)
        raise RuntimeError(f"tail_server not ready after {timeout_s:g} s:\n{log.read_text()[-4000:]}")
    finally:
        client.close()


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
