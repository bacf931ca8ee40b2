"""The RPN's proposal filtering and the detections' postprocess for a whole batch at once, in fixed
shapes.

torchvision filters proposals, post-processes detections and maps boxes back one image at a time:
at batch 32, about 700 small operations a frame, several of which wait on the GPU, so a served
tail is bound by launches, not arithmetic. Here each step runs once per batch, and the per-image
non-maximum suppressions become one suppression over (image, level) or (image, class) groups.
What torchvision drops (small boxes, low scores, suppressed boxes) is masked instead, so every
shape follows from the batch's and the model's: the proposals and the detections can each be
captured in a CUDA graph (models/cuda_graph.py's GraphedHeads), with only the ROI pooling between
them run eagerly: torchvision's roi_align pools each level's boxes, whose counts vary. On a CUDA
device the pooling is models/roi_align_triton.py's kernel, which reads the levels as the FPN wrote them.

Each frame's decisions depend on that frame alone: ties in score break by the candidate's position in
its own image, never by another frame's. Its numbers do not quite: cuDNN and cuBLAS pick kernels by
batch size, so a frame alone and in a batch of 4 differ within float16's rounding (0.006 in score,
H200).
"""

import importlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from types import ModuleType

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812  (the torch idiom)
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, concat_box_prediction_layers
from torchvision.ops import roi_align
from torchvision.ops.poolers import MultiScaleRoIAlign, _setup_scales

# Box pairs whose IoU the dense suppression holds at once (a few float32 matrices of them, a few GiB):
# groups beyond it are suppressed chunk by chunk, so memory stays bounded at any batch size.
PAIRS_PER_CHUNK = 1 << 27
# Steps of the suppression's fixed point between two checks of it (a check waits on the device).
_STEPS_PER_CHECK = 4

Detections = list[dict[str, Tensor]]


@dataclass
class Proposals:
    """Each image's proposals, by objectness descending: (B, P, 4) boxes, the first `valid` of a row
    real and the rest filler (their pooled features are computed, and their detections masked)."""

    boxes: Tensor
    valid: Tensor  # (B, P) bool, a prefix of each row


@dataclass
class PoolingInput:
    """What ROI pooling reads: the pooled levels (as the FPN wrote them for the CUDA kernel, else NCHW
    float32), each proposal as a (image, x1, y1, x2, y2) row and its level."""

    maps: list[Tensor]
    rois: Tensor
    levels: Tensor


@dataclass
class BatchDetections:
    """Each image's detections by score descending, the first `counts` of a row real: (B, D, 4)
    boxes in the pixels of the image's original size, (B, D) scores and labels."""

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    counts: Tensor

    def per_image(self) -> Detections:
        """Each image's detections, trimmed to their counts."""
        counts = self.counts.tolist()
        keys = ("boxes", "scores", "labels")
        return [{key: getattr(self, key)[i, :n] for key in keys} for i, n in enumerate(counts)]

    def to_host(self, images: int) -> list[dict[str, np.ndarray]]:
        """`per_image` as numpy arrays: one copy to the host per output, each waits on the device."""
        boxes, scores, labels, counts = (
            t[:images].cpu().numpy() for t in (self.boxes, self.scores, self.labels, self.counts)
        )
        return [
            {"boxes": b[:n].astype(np.float32), "scores": s[:n].astype(np.float32), "labels": label[:n]}
            for b, s, label, n in zip(boxes, scores, labels, counts, strict=True)
        ]


def kept_in_groups(boxes: Tensor, counts: Tensor, iou_threshold: float) -> Tensor:
    """(G, M) bool: what greedy NMS keeps of each group's first `counts` of (G, M, 4) float32 boxes,
    each group's by score descending; the rest of a row is never kept. torchvision's `batched_nms`,
    with its IoU in float32 as its kernels compute it, and without its coordinate offsets, which round
    boxes of high group indices.

    On a CUDA device one launch of models/nms_cuda.py (a block a group), which a CUDA graph can
    capture; elsewhere Cluster-NMS (Zheng et al., 2021) over every group's suppression matrix."""
    nms_cuda = _nms_cuda() if boxes.is_cuda else None
    if nms_cuda is not None and boxes.shape[1] <= nms_cuda.MAX_GROUP:
        return nms_cuda.kept(boxes, counts, iou_threshold)
    return _kept_by_fixed_point(boxes, counts, iou_threshold)


@cache
def _kernels(module: str, otherwise: str) -> ModuleType | None:
    """sc2_split.models.`module` (numba-cuda or Triton kernels), or None, with a warning that says
    what runs `otherwise`, where the module does not import (its compiler is missing)."""
    try:
        return importlib.import_module(f"sc2_split.models.{module}")
    except Exception as err:  # no numba-cuda or Triton, or none that works with this driver
        warnings.warn(f"{otherwise}, the CUDA kernel is unavailable: {err}", stacklevel=2)
        return None


def _nms_cuda() -> ModuleType | None:
    """models/nms_cuda.py, or None where it cannot compile (the dense suppression)."""
    return _kernels("nms_cuda", "NMS runs as dense matrices")


def _pooling_kernel(pool: MultiScaleRoIAlign, device: torch.device) -> ModuleType | None:
    """models/roi_align_triton.py where it compiles and pools `pool`'s bins, else None (torchvision's)."""
    kernel = _roi_align_kernel(device)
    return kernel if kernel is not None and kernel.supports(pool.output_size, pool.sampling_ratio) else None


@cache
def _roi_align_kernel(device: torch.device) -> ModuleType | None:
    """The kernel's module on a CUDA device, once it has pooled a box there (once per device)."""
    if device.type != "cuda":
        return None
    otherwise = "ROI align runs as torchvision's, on float32 copies of the levels"
    kernel = _kernels("roi_align_triton", otherwise)
    if kernel is None:
        return None
    try:
        kernel.compiles(device)
    except Exception as err:  # a Triton that cannot compile it for this GPU
        warnings.warn(f"{otherwise}, the CUDA kernel does not compile: {err}", stacklevel=2)
        return None
    return kernel


def graphable(device: torch.device) -> bool:
    """Whether the heads on `device` can be captured in CUDA graphs: the dense suppression checks its
    fixed point on the host, the kernel does not."""
    return device.type == "cuda" and _nms_cuda() is not None


def _kept_by_fixed_point(boxes: Tensor, counts: Tensor, iou_threshold: float) -> Tensor:
    """kept_in_groups as matrices: the non-empty groups' suppression matrices (box i suppresses a
    lower-scored box j), then "kept: no kept box suppresses it" iterated to its fixed point, which is
    greedy NMS's result."""
    kept = torch.zeros(boxes.shape[:2], dtype=torch.bool, device=boxes.device)
    live = counts.nonzero().squeeze(1)
    if len(live) == 0:
        return kept
    width = int(counts.max())
    padded, counts = boxes[live, :width], counts[live]
    valid = torch.arange(width, device=boxes.device) < counts[:, None]
    chunk = max(1, PAIRS_PER_CHUNK // (width * width))
    kept[live, :width] = torch.cat(
        [
            _fixed_point(_suppression(padded[i : i + chunk], iou_threshold), valid[i : i + chunk])
            for i in range(0, len(live), chunk)
        ]
    )
    return kept


def _suppression(boxes: Tensor, iou_threshold: float) -> Tensor:
    """(G, M, M): box i of a group suppresses box j after it. torchvision's IoU, operation by operation."""
    sides = boxes.unbind(-1)
    x1, y1, x2, y2 = (side[:, :, None] for side in sides)  # box i along dim 1
    x1_, y1_, x2_, y2_ = (side[:, None, :] for side in sides)  # box j along dim 2
    width = (torch.minimum(x2, x2_) - torch.maximum(x1, x1_)).clamp_(min=0)
    height = (torch.minimum(y2, y2_) - torch.maximum(y1, y1_)).clamp_(min=0)
    inter = width * height
    iou = inter / ((x2 - x1) * (y2 - y1) + (x2_ - x1_) * (y2_ - y1_) - inter)
    return (iou > iou_threshold).triu_(1)


def _fixed_point(suppresses: Tensor, valid: Tensor) -> Tensor:
    """Kept boxes: valid ones that no kept box suppresses. The equation has one solution (box j's
    status follows from those before it), reached in as many steps as the longest suppression chain.

    A step is one batched matrix-vector product (the count of kept boxes that suppress each box),
    exact in float16 for groups of up to 2,048 boxes; the state is compared every few steps, since
    each comparison waits on the device, and steps past the fixed point leave it."""
    exact_half = suppresses.is_cuda and suppresses.shape[-1] <= 2048
    matrix = suppresses.to(torch.float16 if exact_half else torch.float32)

    def step(kept: Tensor) -> Tensor:
        return valid & (torch.bmm(kept.to(matrix.dtype)[:, None, :], matrix)[:, 0] == 0)

    kept = valid
    while True:
        for _ in range(_STEPS_PER_CHECK - 1):
            kept = step(kept)
        following = step(kept)
        if torch.equal(following, kept):
            return kept
        kept = following


def _by_score(scores: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Each row's order: its valid entries by score descending (equal scores by position), then the
    rest; and the number of valid entries."""
    key = torch.where(valid, scores, float("-inf"))
    return key.sort(dim=-1, descending=True, stable=True).indices, valid.sum(-1)


def _kept_in_rows(boxes: Tensor, scores: Tensor, valid: Tensor, iou_threshold: float) -> Tensor:
    """(..., M) bool, what greedy NMS keeps of each row's valid boxes ((..., M, 4) boxes): a group a row."""
    order, counts = _by_score(scores, valid)
    ordered = boxes.gather(-2, order[..., None].expand(*order.shape, 4)).float()
    kept = kept_in_groups(ordered.flatten(0, -3), counts.flatten(), iou_threshold).view_as(order)
    return torch.zeros_like(kept).scatter_(-1, order, kept)


def _best(kept: Tensor, scores: Tensor, limit: int) -> tuple[Tensor, Tensor]:
    """Per row, its `limit` highest-scored kept entries' positions, by score descending (equal scores
    by position, as torchvision orders what its NMS keeps), then filler; and which of them are kept."""
    order, _ = _by_score(scores, kept)
    best = order[:, : min(limit, kept.shape[1])]
    return best, kept.gather(1, best)


def _decoded(coder: BoxCoder, rel_codes: Tensor, boxes: Tensor) -> Tensor:
    """BoxCoder.decode_single, but with Python numbers where torchvision makes tensors of 0.5: a
    tensor made from the host cannot be captured in a CUDA graph. Halving is exact either way."""
    boxes = boxes.to(rel_codes.dtype)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = coder.weights
    dx = rel_codes[:, 0::4] / wx
    dy = rel_codes[:, 1::4] / wy
    dw = torch.clamp(rel_codes[:, 2::4] / ww, max=coder.bbox_xform_clip)
    dh = torch.clamp(rel_codes[:, 3::4] / wh, max=coder.bbox_xform_clip)
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    half_w = 0.5 * (torch.exp(dw) * widths[:, None])
    half_h = 0.5 * (torch.exp(dh) * heights[:, None])
    corners = (pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h)
    return torch.stack(corners, dim=2).flatten(1)


def _clipped(boxes: Tensor, heights: Tensor, widths: Tensor) -> Tensor:
    """torchvision's clip_boxes_to_image with a bound per box, in the boxes' dtype as there."""
    bounds = torch.stack((widths, heights), -1).to(boxes.dtype)
    pairs = boxes.unflatten(-1, (2, 2))  # (..., [x1 y1] / [x2 y2], [x y])
    return pairs.clamp(min=0).minimum(bounds[..., None, :]).flatten(-2)


def _large_enough(boxes: Tensor, min_size: float) -> Tensor:
    return (boxes[..., 2] - boxes[..., 0] >= min_size) & (boxes[..., 3] - boxes[..., 1] >= min_size)


def proposals(
    rpn: RegionProposalNetwork, features: OrderedDict[str, Tensor], anchors: list[Tensor], sizes: Tensor
) -> Proposals:
    """RegionProposalNetwork.forward in eval, for `anchors` (its anchor generator's, per image) and
    (B, 2) image sizes (height, width) on the device."""
    maps = list(features.values())
    objectness, deltas = rpn.head(maps)
    num_anchors_per_level = [o[0].numel() for o in objectness]
    objectness, deltas = concat_box_prediction_layers(objectness, deltas)
    count = len(anchors)
    boxes = _decoded(rpn.box_coder, deltas.detach(), torch.cat(anchors)).view(count, -1, 4)
    objectness = objectness.detach().reshape(count, -1)

    device = boxes.device
    top = rpn._get_top_n_idx(objectness, num_anchors_per_level)  # (B, K): each level's top n in turn
    image = torch.arange(count, device=device)[:, None]
    scores = torch.sigmoid(objectness[image, top])
    heights, widths = sizes.unbind(1)
    boxes = _clipped(boxes[image, top], heights[:, None], widths[:, None])
    keep = _large_enough(boxes, rpn.min_size) & (scores >= rpn.score_thresh)

    # (image, level) groups as rows of the widest level's length; the rest of a row points at a
    # column past the last, of no box.
    width = top.shape[1]
    per_level = [min(rpn.pre_nms_top_n(), n) for n in num_anchors_per_level]
    offsets = np.cumsum([0, *per_level[:-1]])
    position = torch.arange(max(per_level), device=device)
    columns = torch.stack(
        [torch.where(position < n, position + int(o), width) for n, o in zip(per_level, offsets, strict=True)]
    )

    def grouped(t: Tensor) -> Tensor:
        return torch.cat([t, t[:, :1]], 1)[:, columns]

    kept = _kept_in_rows(grouped(boxes), grouped(scores), grouped(keep) & (columns < width), rpn.nms_thresh)
    kept = kept.new_zeros((count, width + 1)).scatter_(
        1, columns.expand(count, -1, -1).flatten(1), kept.flatten(1)
    )
    best, valid = _best(kept[:, :width], scores, rpn.post_nms_top_n())
    return Proposals(boxes.gather(1, best[..., None].expand(-1, -1, 4)), valid)


def pooling_input(
    pool: MultiScaleRoIAlign,
    features: OrderedDict[str, Tensor],
    proposals: Proposals,
    image_sizes: list[tuple[int, int]],
) -> PoolingInput:
    """MultiScaleRoIAlign's inputs to roi_align, in fixed shapes: the levels (for torchvision's
    roi_align copied once to NCHW float32, which it reads, instead of autocast's cast to float32 and
    then roi_align's own transposing copy), and each proposal's level, as its mapper assigns them."""
    maps = [level for name, level in features.items() if name in pool.featmap_names]
    if _pooling_kernel(pool, maps[0].device) is None:
        maps = [level.to(torch.float32, memory_format=torch.contiguous_format) for level in maps]
    if pool.scales is None or pool.map_levels is None:  # as MultiScaleRoIAlign.forward, once
        pool.scales, pool.map_levels = _setup_scales(
            maps, image_sizes, pool.canonical_scale, pool.canonical_level
        )
    count, per_image = proposals.valid.shape
    boxes = proposals.boxes.flatten(0, 1)
    image = torch.arange(count, device=boxes.device).repeat_interleave(per_image)
    rois = torch.cat([image[:, None].to(boxes.dtype), boxes], 1)
    return PoolingInput(maps, rois, pool.map_levels([boxes]))


def pool_into(pool: MultiScaleRoIAlign, given: PoolingInput, out: Tensor) -> Tensor:
    """MultiScaleRoIAlign into `out` (pooled_buffer's): the only part of the heads whose shapes follow
    from the data, the number of boxes of each level, except on the CUDA kernel, which takes every box
    in each level's launch."""
    assert pool.scales is not None  # set by pooling_input
    kernel = _pooling_kernel(pool, out.device)
    if kernel is not None:
        return kernel.pool(given.maps, pool.scales, given.rois, given.levels, pool.sampling_ratio, out)
    out.zero_()
    for level, (features, scale) in enumerate(zip(given.maps, pool.scales, strict=True)):
        index = torch.where(given.levels == level)[0]
        pooled = roi_align(features, given.rois[index], pool.output_size, scale, pool.sampling_ratio)
        out[index] = pooled.to(out.dtype)
    return out


def pooled_buffer(pool: MultiScaleRoIAlign, given: PoolingInput) -> Tensor:
    """An (N, C, h, w) tensor for pool_into in the levels' dtype: channels-last for the CUDA kernel,
    which writes each box's values side by side."""
    level = given.maps[0]
    if _pooling_kernel(pool, level.device) is None:
        return level.new_empty((len(given.rois), level.shape[1], *pool.output_size))
    return level.new_empty((len(given.rois), *pool.output_size, level.shape[1])).permute(0, 3, 1, 2)


def size_rows(images: ImageList, original_sizes: list[tuple[int, int]]) -> Tensor:
    """(B, 4) on the host: each image's resized height and width, then its original ones."""
    rows = [(*size, *original) for size, original in zip(images.image_sizes, original_sizes, strict=True)]
    return torch.tensor(rows, dtype=torch.int64)


def detections(
    roi_heads: RoIHeads, pooled: Tensor, proposals: Proposals, sizes: Tensor, original_sizes: Tensor
) -> BatchDetections:
    """RoIHeads.forward in eval and GeneralizedRCNNTransform.postprocess, from the pooled proposals:
    each image's detections, by score descending, in the pixels of its original size. `sizes` and
    `original_sizes`: (B, 2) heights and widths on the device."""
    class_logits, box_regression = roi_heads.box_predictor(roi_heads.box_head(pooled))
    count, per_image = proposals.valid.shape
    boxes = _decoded(roi_heads.box_coder, box_regression, proposals.boxes.flatten(0, 1))
    boxes = boxes.reshape(count * per_image, -1, 4)
    scores = F.softmax(class_logits, -1)

    classes = scores.shape[-1]
    image = torch.arange(count, device=boxes.device).repeat_interleave(per_image)
    heights, widths = sizes.unbind(1)
    boxes = _clipped(boxes, heights[image, None], widths[image, None])
    # Every class but the background a candidate of its own, proposal by proposal as torchvision.
    boxes = boxes[:, 1:].reshape(count, per_image, classes - 1, 4)
    scores = scores[:, 1:].reshape(count, per_image, classes - 1)
    keep = (scores > roi_heads.score_thresh) & _large_enough(boxes, 1e-2) & proposals.valid[:, :, None]
    # (image, class) groups: a row of proposals each.
    kept = _kept_in_rows(
        boxes.transpose(1, 2), scores.transpose(1, 2), keep.transpose(1, 2), roi_heads.nms_thresh
    ).transpose(1, 2)
    best, valid = _best(kept.reshape(count, -1), scores.reshape(count, -1), roi_heads.detections_per_img)

    # GeneralizedRCNNTransform.postprocess: its float32 ratios, in the boxes' dtype as there.
    ratios = (original_sizes.float() / sizes.float()).to(boxes.dtype)
    scale = ratios.flip(1).repeat(1, 2)  # (width, height, width, height) ratios per image
    chosen = boxes.reshape(count, -1, 4).gather(1, best[..., None].expand(-1, -1, 4))
    return BatchDetections(
        chosen * scale[:, None],
        scores.reshape(count, -1).gather(1, best),
        best % (classes - 1) + 1,
        valid.sum(1),
    )


def heads(
    rpn: RegionProposalNetwork,
    roi_heads: RoIHeads,
    images: ImageList,
    features: OrderedDict[str, Tensor],
    original_sizes: list[tuple[int, int]],
) -> BatchDetections:
    """The RPN and ROI heads with the postprocess, eagerly: what GraphedHeads replays."""
    device = next(iter(features.values())).device
    anchors = rpn.anchor_generator(images, list(features.values()))
    sizes = size_rows(images, original_sizes).to(device)
    found = proposals(rpn, features, anchors, sizes[:, :2])
    pool = roi_heads.box_roi_pool
    given = pooling_input(pool, features, found, images.image_sizes)
    pooled = pool_into(pool, given, pooled_buffer(pool, given))
    return detections(roi_heads, pooled, found, sizes[:, :2], sizes[:, 2:])
