"""torch's CUDA tensors and streams as numba's kernels take them, so that a kernel runs in order
with torch's work on the current stream, without waiting on the device (a CUDA graph can capture it)."""

from typing import Any

import torch
from numba import cuda
from torch import Tensor

_streams: dict[int, Any] = {}


def device_array(tensor: Tensor) -> Any:  # numba's device array
    """numba's view of a CUDA tensor, without a synchronisation."""
    return cuda.as_cuda_array(tensor, sync=False)


def current_stream(device: torch.device) -> Any:  # numba's stream
    """numba's view of torch's current stream on `device`, made once per stream."""
    handle = torch.cuda.current_stream(device).cuda_stream
    if handle not in _streams:
        _streams[handle] = cuda.external_stream(handle)
    return _streams[handle]
