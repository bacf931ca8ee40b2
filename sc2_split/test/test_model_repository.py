"""The model repository that `tail_server --write-repository` writes runs under a standalone
`tritonserver` (here the one inside the PyTriton wheel, as NVIDIA's container would run it) with the
Python backend, and answers as the in-process tail does: a good frame, and a malformed one beside it."""

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import numpy as np
from pytriton.utils.distribution import get_libs_path, get_root_module_path, get_stub_path
from sc2_split.codecs.payload import PayloadError
from sc2_split.ros.bottleneck_conversion import from_bottleneck
from sc2_split.serving.client import ServedTail
from sc2_split.serving.process import ServerPorts, wait_until_ready
from sc2_split.serving.protocol import triton_model_name
from sc2_split.serving.server import main as tail_server_main
from sc2_split.tail import TailPipeline
from served_fixtures import copy_bottleneck, record_bottlenecks

import sc2_split


def python_backend_dir(root: Path) -> Path:
    """Triton's backend directory with the Python backend and the stub of this interpreter."""
    backend = root / "backends" / "python"
    shutil.copytree(get_root_module_path() / "tritonserver" / "backends" / "python", backend)
    shutil.copy(get_stub_path(f"{sys.version_info.major}.{sys.version_info.minor}"), backend)
    return root / "backends"


def test_written_repository_serves_under_a_standalone_tritonserver(
    exported_head: dict[str, str], tmp_path: Path
) -> None:
    model = f"{exported_head['model_config']}:{exported_head['checkpoint']}"
    repository = tmp_path / "repository"
    assert (
        tail_server_main(["--model", model, "--write-repository", str(repository), "--max-batch", "4"]) == 0
    )
    (good,) = record_bottlenecks(exported_head, 1)
    name = triton_model_name(good.model_id)
    config = (repository / name / "config.pbtxt").read_text()
    assert "max_batch_size: 4" in config and "kind: KIND_CPU" in config and good.model_id in config

    ports = ServerPorts.free()
    binary = get_root_module_path() / "tritonserver" / "bin" / "tritonserver"
    backends = python_backend_dir(tmp_path)
    command = [
        str(binary), "--model-repository", str(repository), "--backend-directory", str(backends),
        "--http-port", str(ports.http), "--grpc-port", str(ports.grpc), "--metrics-port", str(ports.metrics),
    ]  # fmt: skip
    libs = [str(get_libs_path()), sysconfig.get_config_var("LIBDIR")]
    # The stub embeds this interpreter: sc2_split (this one) first, then this process's packages.
    paths = [str(Path(sc2_split.__file__).parents[1]), *(p for p in sys.path if p.endswith("site-packages"))]
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(libs), PYTHONPATH=os.pathsep.join(paths))
    log = tmp_path / "tritonserver.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(ports.url, [name], 300.0, lambda: server.poll() is None, log)
        malformed = copy_bottleneck(good)
        malformed.data = malformed.data[: len(malformed.data) // 2]
        results: dict[str, object] = {}
        answered = threading.Event()
        tail = ServedTail(ports.url, max_in_flight=2, timeout_s=60.0)

        def keep(key: str):
            def done(result: object) -> None:
                results[key] = result
                if len(results) == 2:
                    answered.set()

            return done

        assert tail.submit(from_bottleneck(good), keep("good"))
        assert tail.submit(from_bottleneck(malformed), keep("malformed"))
        assert answered.wait(120), log.read_text()[-3000:]
        tail.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)

    assert isinstance(results["malformed"], PayloadError) and results["malformed"].reason == "truncated"
    with TailPipeline.from_config(exported_head["model_config"], exported_head["checkpoint"]) as local:
        want = local(from_bottleneck(good))
    got = results["good"]
    np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
    np.testing.assert_array_equal(got.labels, want.labels)
    assert len(got.scores) > 0
