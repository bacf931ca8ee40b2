"""The model repository that `tail_server --write-repository` writes, served by a standalone
`tritonserver` (the PyTriton wheel's binary, on the CPU): its Python backend finds sc2_split and
warms up for the camera's size, and a bottleneck gets the in-process tail's detections; a truncated
one the in-process tail's rejection."""

import os
import queue
from pathlib import Path

import numpy as np
import pytest
from sc2_split.codecs.payload import PayloadError
from sc2_split.frames import Detections
from sc2_split.head_metadata import HeadMetadata
from sc2_split.ros.bottleneck_conversion import from_bottleneck
from sc2_split.serving.client import ServedTail
from sc2_split.serving.process import ServerPorts, server_process, wheel_tritonserver_command
from sc2_split.serving.protocol import triton_model_name
from sc2_split.serving.server import main as tail_server
from sc2_split.tail import TailPipeline
from served_fixtures import copy_bottleneck, record_bottlenecks


def test_a_written_repository_serves_the_in_process_tails_detections_under_tritonserver(
    exported_head: dict[str, str], tmp_path: Path
) -> None:
    (msg,) = record_bottlenecks(exported_head, 1)
    truncated = copy_bottleneck(msg)
    truncated.data = truncated.data[:-10]
    config, checkpoint = exported_head["model_config"], exported_head["checkpoint"]
    repository = tmp_path / "models"
    camera = f"{msg.image_width}x{msg.image_height}"  # each instance warms up for it, batches 1 to 4
    written = ["--write-repository", str(repository), "--model", f"{config}:{checkpoint}"]
    # Preferred batch sizes too: tritonserver refuses a model whose config it cannot parse.
    batching = ["--max-batch", "4", "--preferred-batch", "2", "4"]
    assert tail_server([*written, *batching, "--warm-up", camera]) == 0
    name = triton_model_name(HeadMetadata.load(exported_head["metadata_file_path"]).model_id)
    text = (repository / name / "config.pbtxt").read_text()
    assert f'key: "warm_up" value: {{ string_value: "{camera}" }}' in text
    assert "preferred_batch_size: [ 2, 4 ]" in text

    ports = ServerPorts.free()
    command, env = wheel_tritonserver_command(repository, ports, tmp_path / "triton", os.environ)
    answers: queue.Queue = queue.Queue()
    with server_process(command, ports, env, tmp_path / "tritonserver.log", [name]):
        tail = ServedTail(ports.url, timeout_s=120.0)
        try:
            assert tail.submit(from_bottleneck(msg), answers.put)
            got = answers.get(timeout=180)
            assert tail.submit(from_bottleneck(truncated), answers.put)
            rejected = answers.get(timeout=180)
        finally:
            tail.close()

    assert isinstance(got, Detections), (tmp_path / "tritonserver.log").read_text()[-4000:]
    with TailPipeline.from_config(config, checkpoint) as local:
        want = local(from_bottleneck(msg))
        with pytest.raises(PayloadError) as in_process:
            local(from_bottleneck(truncated))
    assert len(got.scores) == len(want.scores) > 0
    np.testing.assert_allclose(got.boxes, want.boxes, rtol=0, atol=1e-3)
    np.testing.assert_allclose(got.scores, want.scores, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got.labels, want.labels)
    assert isinstance(rejected, PayloadError), rejected
    assert rejected.reason == in_process.value.reason == "truncated", (rejected, in_process.value)
