"""The served tail as a Triton model repository, for a standalone `tritonserver` (NVIDIA's container,
several GPUs, several servers behind one address):

    <repository>/<model name>/config.pbtxt   tensors, dynamic batching, queue policy, instance groups
    <repository>/<model name>/1/model.py     imports serving/python_backend.py

The model name follows from the model id, as the clients derive it. Bundled config and checkpoint
names resolve wherever sc2_split is installed; a .pt path must exist where the server runs.

model.py finds sc2_split where the Python running the backend stub has it installed (NVIDIA's
container: pip install it there). Failing that, and only under the Python version that wrote it, it
looks where the writer found its packages (sc2_split's root, the venv's site-packages): the stub of
a tritonserver beside the writer, e.g. the PyTriton wheel's, embeds that Python's libpython but not
its venv.
"""

import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sc2_split.serving.protocol import INPUT_TENSORS, OUTPUT_TENSORS, triton_model_name
from sc2_split.serving.server import Batching, ServedModel
from sc2_split.tail import TailPipeline

_TYPES = {np.bytes_: "TYPE_STRING", np.int32: "TYPE_INT32", np.int64: "TYPE_INT64", np.float32: "TYPE_FP32"}

MODEL_PY = '''"""sc2_split's served tail (Python backend), from `tail_server --write-repository`."""

import importlib.util
import os
import sys

# Where the writer (Python {version}) found sc2_split and its requirements: searched only by the same
# Python version, and only where sc2_split is not installed (a folder named sc2_split on the path, e.g.
# the source tree's, is a namespace package without an origin, not the package).
WRITER_PATH = {path!r}
installed = importlib.util.find_spec("sc2_split")
if (installed is None or installed.origin is None) and sys.version_info[:2] == {version_info!r}:
    sys.path[:0] = [p for p in WRITER_PATH if os.path.isdir(p) and p not in sys.path]

from sc2_split.serving.python_backend import TritonPythonModel  # noqa: E402, F401
'''


def model_py() -> str:
    """The model.py of every model: this interpreter's search path, for a stub that lacks it."""
    path = [p for p in sys.path if p and Path(p).is_dir()]
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return MODEL_PY.format(version=version, version_info=tuple(sys.version_info[:2]), path=path)


def write_repository(
    repository: str | Path,
    models: Sequence[ServedModel],
    devices: Sequence[str],
    batching: Batching,
    decode_workers: int = 0,
    precision: str = "fp32",
    warm_up: Sequence[tuple[int, int]] = (),
) -> list[Path]:
    """Writes each model's directory; `devices` become one instance group (cuda:N: one instance on
    GPU N; cpu: on the CPU), and each instance warms up for the (width, height) frames of `warm_up`
    as tail_server's do. Returns the config files written."""
    written = []
    for model in models:
        with TailPipeline.from_config(model.model_config, model.checkpoint) as pipeline:
            model_id = pipeline.model_id
        name = triton_model_name(model_id)
        directory = Path(repository) / name
        (directory / "1").mkdir(parents=True, exist_ok=True)
        (directory / "1" / "model.py").write_text(model_py())
        parameters = {
            "model_config": model.model_config,
            "checkpoint": model.checkpoint,
            "model_id": model_id,
            "decode_workers": str(decode_workers),
            "precision": precision,
            "warm_up": " ".join(f"{width}x{height}" for width, height in warm_up),
        }
        config = directory / "config.pbtxt"
        config.write_text(model_config_text(name, batching, devices, parameters))
        written.append(config)
    return written


def model_config_text(
    name: str, batching: Batching, devices: Sequence[str], parameters: dict[str, str]
) -> str:
    def tensors(kind: str, table: tuple) -> str:
        rows = [
            f'  {{ name: "{n}" data_type: {_TYPES[t]} dims: [ {", ".join(str(d) for d in dims)} ] }}'
            for n, t, dims in table
        ]
        return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"

    counts = Counter(devices)
    groups = [
        f"  {{ count: {n} kind: KIND_CPU }}"
        if d == "cpu"
        else f"  {{ count: {n} kind: KIND_GPU gpus: [ {_gpu(d)} ] }}"
        for d, n in counts.items()
    ]
    preferred = ", ".join(str(n) for n in batching.preferred_on(devices))
    preferred = f"  preferred_batch_size: [ {preferred} ]\n" if preferred else ""
    params = ",\n".join(f'  {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in parameters.items())
    return (
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: {batching.max_batch}\n'
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {batching.queue_delay_us}\n{preferred}"
        f"  default_queue_policy {{ timeout_action: REJECT allow_timeout_override: true "
        f"max_queue_size: {batching.max_queue} }}\n}}\n"
        + tensors("input", INPUT_TENSORS)
        + tensors("output", OUTPUT_TENSORS)
        + "instance_group [\n" + ",\n".join(groups) + "\n]\n"
        + f"parameters [\n{params}\n]\n"
    )  # fmt: skip


def _gpu(device: str) -> int:
    if not device.startswith("cuda"):
        raise ValueError(f"a served model runs on cpu or cuda:N, not {device!r}")
    return int(device.partition(":")[2] or 0)
