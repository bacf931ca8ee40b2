"""The served tail as a Triton model repository, for a standalone `tritonserver` (NVIDIA's container,
several GPUs, several servers behind one address):

    <repository>/<model name>/config.pbtxt   tensors, dynamic batching, queue policy, instance groups
    <repository>/<model name>/1/model.py     imports serving/python_backend.py (sc2_split installed)

The model name follows from the model id, as the clients derive it. Bundled config and checkpoint
names resolve wherever sc2_split is installed; a .pt path must exist where the server runs.
"""

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sc2_split.serving.protocol import INPUT_TENSORS, OUTPUT_TENSORS, triton_model_name
from sc2_split.serving.server import Batching, ServedModel
from sc2_split.tail import TailPipeline

_TYPES = {np.bytes_: "TYPE_STRING", np.int32: "TYPE_INT32", np.int64: "TYPE_INT64", np.float32: "TYPE_FP32"}

MODEL_PY = '''"""sc2_split's served tail (Python backend), from `tail_server --write-repository`."""

from sc2_split.serving.python_backend import TritonPythonModel  # noqa: F401
'''


def write_repository(
    repository: str | Path,
    models: Sequence[ServedModel],
    devices: Sequence[str],
    batching: Batching,
    decode_workers: int = 0,
    precision: str = "fp32",
) -> list[Path]:
    """Writes each model's directory; `devices` become one instance group (cuda:N: one instance on
    GPU N; cpu: on the CPU). Returns the config files written."""
    written = []
    for model in models:
        with TailPipeline.from_config(model.model_config, model.checkpoint) as pipeline:
            model_id = pipeline.model_id
        name = triton_model_name(model_id)
        directory = Path(repository) / name
        (directory / "1").mkdir(parents=True, exist_ok=True)
        (directory / "1" / "model.py").write_text(MODEL_PY)
        parameters = {
            "model_config": model.model_config,
            "checkpoint": model.checkpoint,
            "model_id": model_id,
            "decode_workers": str(decode_workers),
            "precision": precision,
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
    params = ",\n".join(f'  {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in parameters.items())
    return (
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: {batching.max_batch}\n'
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {batching.queue_delay_us}\n"
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
