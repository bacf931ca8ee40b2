"""The tail's fixed-shape part replayed from CUDA graphs.

At batch 1 a GPU tail is bound by kernel launches, not arithmetic: a ResNet-50's decoder, stages
and FPN are a few hundred small kernels, each launched from Python. Their shapes follow from the
latent's, which a camera fixes, so each latent shape is captured once and then replayed with one
launch. The RPN and ROI heads (data-dependent shapes) stay eager.
"""

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

# Latent shapes captured; further ones run eagerly, so a sender cycling through frame sizes cannot
# fill the GPU's memory with graphs. A served tail's batches, padded to powers of two up to 32, take 6.
MAX_GRAPHS = 8
_WARMUP_RUNS = 3  # before capture, on a side stream: cuDNN's and the allocator's first-call work

Features = Callable[[Tensor], OrderedDict[str, Tensor]]


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    latent: Tensor  # the captured input, refilled before each replay
    features: OrderedDict[str, Tensor]  # the captured outputs, rewritten by each replay


class GraphedFeatures:
    """`features` (Tail.features) on a CUDA device, replayed from one CUDA graph per latent shape.

    The returned tensors belong to the graphs and may be rewritten by the next replay: use them
    before calling again (the tail's network runs one frame at a time). `half` captures under float16
    autocast, as TailPipeline runs fp16.

    The graphs share one memory pool, as only one replays at a time: it holds the largest graph's
    intermediates once, not every batch size's (a ResNet-50 tail's six took 28 GiB with a pool each).
    """

    def __init__(self, features: Features, half: bool) -> None:
        self.features, self.half = features, half
        self._graphs: dict[tuple[tuple[int, ...], torch.dtype], _Graph] = {}
        self._pool: tuple[int, int] | None = None  # created with the first graph, on its device

    def __call__(self, latent: Tensor) -> OrderedDict[str, Tensor]:
        key = (tuple(latent.shape), latent.dtype)
        entry = self._graphs.get(key)
        if entry is None:
            if len(self._graphs) >= MAX_GRAPHS:
                with self._autocast():
                    return self.features(latent)
            entry = self._graphs[key] = self._capture(latent)
        entry.latent.copy_(latent)
        entry.graph.replay()
        return entry.features

    def _autocast(self) -> torch.autocast:
        # No weight-cast cache: a graph must not point at casts the cache frees when its context ends.
        return torch.autocast("cuda", torch.float16, enabled=self.half, cache_enabled=False)

    def _capture(self, latent: Tensor) -> _Graph:
        static = latent.clone()
        side = torch.cuda.Stream(latent.device)
        side.wait_stream(torch.cuda.current_stream(latent.device))
        with torch.cuda.stream(side), self._autocast():
            for _ in range(_WARMUP_RUNS):
                self.features(static)
        torch.cuda.current_stream(latent.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        if self._pool is None:
            with torch.cuda.device(latent.device):
                self._pool = torch.cuda.graph_pool_handle()
        with torch.cuda.graph(graph, pool=self._pool), self._autocast():
            features = self.features(static)
        return _Graph(graph, static, features)
