"""The tail's fixed-shape parts replayed from CUDA graphs.

At batch 1 a GPU tail is bound by kernel launches, not arithmetic: a ResNet-50's decoder, stages
and FPN are a few hundred small kernels, each launched from Python. Their shapes follow from the
latent's, which a camera fixes, so each latent shape is captured once and then replayed with one
launch. The batched heads (models/batched_heads.py) are fixed-shape too, but for the ROI pooling
between the proposals and the detections: two more graphs per shape, and the pooling eager.
"""

import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork

from sc2_split.models import batched_heads
from sc2_split.models.batched_heads import BatchDetections, PoolingInput, Proposals

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
        return _autocast(self.half)

    def _capture(self, latent: Tensor) -> _Graph:
        static = latent.clone()
        with _side_stream(latent.device), self._autocast():
            for _ in range(_WARMUP_RUNS):
                self.features(static)
        graph = torch.cuda.CUDAGraph()
        self._pool = self._pool or _new_pool(latent.device)
        with torch.cuda.graph(graph, pool=self._pool), self._autocast():
            features = self.features(static)
        return _Graph(graph, static, features)


def _autocast(half: bool) -> torch.autocast:
    # No weight-cast cache: a graph must not point at casts the cache frees when its context ends.
    return torch.autocast("cuda", torch.float16, enabled=half, cache_enabled=False)


def _new_pool(device: torch.device) -> tuple[int, int]:
    with torch.cuda.device(device):
        return torch.cuda.graph_pool_handle()


@contextmanager
def _side_stream(device: torch.device) -> Iterator[None]:
    """Warm-up runs before a capture, on a side stream, as torch's notes on CUDA graphs advise."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        yield
    torch.cuda.current_stream(device).wait_stream(side)


@dataclass
class _HeadsGraphs:
    """Two graphs and every tensor they read or write: a graph holds addresses, not tensors, so
    what it reads must stay allocated (the anchors, made outside the capture, and the features)."""

    proposals: torch.cuda.CUDAGraph
    detections: torch.cuda.CUDAGraph
    features: OrderedDict[str, Tensor]  # the first graph's input, rewritten by GraphedFeatures
    anchors: list[Tensor]
    sizes: Tensor  # (B, 4) resized and original heights and widths, refilled before each replay
    proposed: Proposals  # the first graph's outputs, and the second's input
    pooling: PoolingInput  # the first graph's outputs
    pooled: Tensor  # the second graph's input, filled by the eager pooling
    found: BatchDetections  # the second graph's outputs


class GraphedHeads:
    """batched_heads.heads on a CUDA device, from two CUDA graphs per batch shape: the proposals, and
    the detections from the pooled proposals. The ROI pooling between them runs eagerly: its levels'
    box counts follow from the data.

    A shape's graphs read the features they were captured on: call with GraphedFeatures' outputs,
    which are the same tensors for each latent shape (other tensors are captured anew, up to
    MAX_GRAPHS shapes, then run eagerly). The returned detections belong to the graphs, as
    GraphedFeatures' outputs do. Where a capture fails (a CUDA runtime that refuses the NMS kernel's
    launch in a graph), the heads run eagerly from then on, with a warning."""

    def __init__(self, rpn: RegionProposalNetwork, roi_heads: RoIHeads, half: bool) -> None:
        self.rpn, self.roi_heads, self.half = rpn, roi_heads, half
        self._graphs: dict[tuple, _HeadsGraphs] = {}
        self._pool: tuple[int, int] | None = None
        self._eager = False

    def __call__(
        self, images: ImageList, features: OrderedDict[str, Tensor], original_sizes: list[tuple[int, int]]
    ) -> BatchDetections:
        key = tuple((name, tuple(t.shape), t.dtype, t.data_ptr()) for name, t in features.items())
        entry = self._graphs.get(key)
        if entry is None and not self._eager and len(self._graphs) < MAX_GRAPHS:
            try:
                entry = self._graphs[key] = self._capture(images, features, original_sizes)
            except Exception as err:  # the kernel or an operation that this runtime cannot capture
                warnings.warn(f"the batched heads run eagerly, their capture failed: {err}", stacklevel=2)
                self._eager = True
        if entry is None:
            return batched_heads.heads(self.rpn, self.roi_heads, images, features, original_sizes)
        entry.sizes.copy_(batched_heads.size_rows(images, original_sizes))
        entry.proposals.replay()
        batched_heads.pool_into(self.roi_heads.box_roi_pool, entry.pooling, entry.pooled)
        entry.detections.replay()
        return entry.found

    def _capture(
        self, images: ImageList, features: OrderedDict[str, Tensor], original_sizes: list[tuple[int, int]]
    ) -> _HeadsGraphs:
        device = next(iter(features.values())).device
        pool = self.roi_heads.box_roi_pool
        anchors = self.rpn.anchor_generator(images, list(features.values()))  # the shape's, fixed
        sizes = batched_heads.size_rows(images, original_sizes).to(device)

        def proposals() -> tuple[Proposals, PoolingInput]:
            found = batched_heads.proposals(self.rpn, features, anchors, sizes[:, :2])
            return found, batched_heads.pooling_input(pool, features, found, images.image_sizes)

        def detections(pooled: Tensor, found: Proposals) -> BatchDetections:
            return batched_heads.detections(self.roi_heads, pooled, found, sizes[:, :2], sizes[:, 2:])

        with _side_stream(device), _autocast(self.half):
            for _ in range(_WARMUP_RUNS):  # compiles the NMS kernel, sets the pool's scales
                found, given = proposals()
                detections(
                    batched_heads.pool_into(pool, given, batched_heads.pooled_buffer(pool, given)), found
                )
        self._pool = self._pool or _new_pool(device)
        first, second = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        with torch.cuda.graph(first, pool=self._pool), _autocast(self.half):
            found, given = proposals()
        pooled = batched_heads.pooled_buffer(pool, given)
        with torch.cuda.graph(second, pool=self._pool), _autocast(self.half):
            out = detections(pooled, found)
        return _HeadsGraphs(first, second, features, anchors, sizes, found, given, pooled, out)
