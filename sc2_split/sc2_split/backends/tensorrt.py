"""TensorRT backend (Jetson, or any NVIDIA GPU): a serialized engine run through the TensorRT 10
Python API, device buffers managed with cuda-python. Build the engine with `python -m sc2_split.export`
(or the trtexec command it prints) on the machine that runs it: engines do not move between GPUs
or TensorRT versions.
"""

from pathlib import Path
from typing import Any

import numpy as np
import tensorrt as trt

# cuda-python is compiled and ships no stubs, so a type checker sees no names in it.
try:  # cuda-python 12.6 and newer
    from cuda.bindings import runtime as cudart  # pyright: ignore[reportAttributeAccessIssue]
except ImportError:  # older cuda-python
    from cuda import cudart  # pyright: ignore[reportAttributeAccessIssue]

from sc2_split.backends import check_frame
from sc2_split.head_metadata import HeadMetadata


def _check(result: tuple[Any, ...]) -> Any:
    """cuda-python returns (error, value...); raise on an error, return the value."""
    err, *values = result
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA error: {cudart.cudaGetErrorString(err)[1].decode()}")
    return values[0] if len(values) == 1 else tuple(values)


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, engine_file_path: Path, metadata: HeadMetadata) -> None:
        self.metadata = metadata
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(Path(engine_file_path).read_bytes())
        if self.engine is None:
            raise RuntimeError(
                f"cannot load {engine_file_path}: it was built for another GPU or TensorRT version; "
                "rebuild it on this machine (python -m sc2_split.export --engine)"
            )
        self.context = self.engine.create_execution_context()
        self.stream = _check(cudart.cudaStreamCreate())
        self.output = np.empty(metadata.latent_shape, dtype=np.float32)
        self._buffers: dict[str, int] = {}
        expected = {
            metadata.input_name: ((metadata.input_height, metadata.input_width, 3), np.uint8),
            metadata.output_name: (tuple(metadata.latent_shape), np.float32),
        }
        for name, (shape, dtype) in expected.items():
            actual = (
                self.engine.get_tensor_shape(name)[:],  # Dims: a slice of it is a tuple
                trt.nptype(self.engine.get_tensor_dtype(name)),
            )
            if actual != (shape, dtype):
                raise ValueError(
                    f"{engine_file_path}: tensor {name!r} is {actual}, metadata says {(shape, dtype)}"
                )
            self._buffers[name] = _check(cudart.cudaMalloc(int(np.prod(shape)) * np.dtype(dtype).itemsize))
            self.context.set_tensor_address(name, self._buffers[name])

    def __call__(self, image: np.ndarray) -> np.ndarray:
        frame = check_frame(image, self.metadata)
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(
            cudart.cudaMemcpyAsync(
                self._buffers[self.metadata.input_name], frame.ctypes.data, frame.nbytes, h2d, self.stream
            )
        )
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execution failed")
        _check(
            cudart.cudaMemcpyAsync(
                self.output.ctypes.data,
                self._buffers[self.metadata.output_name],
                self.output.nbytes,
                d2h,
                self.stream,
            )
        )
        _check(cudart.cudaStreamSynchronize(self.stream))
        return self.output.copy()

    def __del__(self) -> None:
        for pointer in getattr(self, "_buffers", {}).values():
            cudart.cudaFree(pointer)
        if hasattr(self, "stream"):
            cudart.cudaStreamDestroy(self.stream)
