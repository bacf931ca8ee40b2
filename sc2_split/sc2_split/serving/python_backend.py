"""The served tail as a model of Triton's Python backend, for a standalone `tritonserver` (NVIDIA's
container) reading the model repository that `tail_server --write-repository` writes. Each model
instance builds its TailPipeline from the config's parameters on the device Triton gives it, and
warms it up for the parameters' frame sizes before Triton sends it a request; the batching, queue
policy and instance groups are Triton's, in config.pbtxt.

Only importable inside Triton's Python backend stub, which provides `triton_python_backend_utils`.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from sc2_split.serving.protocol import HEADER, OUTPUT_TENSORS, PAYLOAD
from sc2_split.serving.server import frame_size
from sc2_split.serving.tail_model import BatchedTail
from sc2_split.tail import TailPipeline


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        p = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        gpu = args["model_instance_kind"] == "GPU"
        device = f"cuda:{args['model_instance_device_id']}" if gpu else "cpu"
        self.pipeline = TailPipeline.from_config(
            p["model_config"], p["checkpoint"], device=device, decode_workers=int(p["decode_workers"]),
            precision=p["precision"],
        )  # fmt: skip
        if self.pipeline.model_id != p["model_id"]:
            raise ValueError(
                f"{args['model_name']}: the repository was written for {p['model_id']}, these weights are "
                f"{self.pipeline.model_id}; write it again from the checkpoint the heads were exported from"
            )
        for size in p.get("warm_up", "").split():
            self.pipeline.warm_up(*frame_size(size), int(config["max_batch_size"]))
        self.tail = BatchedTail(self.pipeline)

    def execute(self, requests: list) -> list:
        """One batch of Triton's dynamic batcher: the requests' frames stacked, then split back."""
        headers = [pb_utils.get_input_tensor_by_name(r, HEADER).as_numpy() for r in requests]
        payloads = [pb_utils.get_input_tensor_by_name(r, PAYLOAD).as_numpy() for r in requests]
        outputs = self.tail(np.concatenate(headers), np.concatenate(payloads))
        responses, start = [], 0
        for header in headers:
            rows = slice(start, start + len(header))
            start += len(header)
            tensors = [pb_utils.Tensor(name, outputs[name][rows]) for name, _, _ in OUTPUT_TENSORS]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self) -> None:
        self.pipeline.close()
