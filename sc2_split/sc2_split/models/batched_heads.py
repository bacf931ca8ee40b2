"""The RPN's proposal filtering and the detections' postprocess for a whole batch at once.

torchvision filters proposals, post-processes detections and maps boxes back one image at a time:
at batch 32, about 700 small operations a frame, several of which wait on the GPU, so a served
tail is bound by launches, not arithmetic. Here each step runs once per batch, and the per-image
non-maximum suppressions become one suppression over (image, level) or (image, class) groups.

Each frame's result depends on that frame alone: ties in score break by the candidate's position in
its own image, so a frame of a served batch is answered as a batch of one would answer it.
"""

import warnings
from collections import OrderedDict
from functools import cache
from types import ModuleType

import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812  (the torch idiom)
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, concat_box_prediction_layers

# Box pairs whose IoU grouped_nms holds at once (a few float32 matrices of them, a few GiB): groups
# beyond it are suppressed chunk by chunk, so memory stays bounded at any batch size. A demo tail's
# batch of 32 (128 groups of 1,000 proposals) is one chunk.
PAIRS_PER_CHUNK = 1 << 27
# Steps of the suppression's fixed point between two checks of it (a check waits on the device).
_STEPS_PER_CHECK = 4

Detections = list[dict[str, Tensor]]


def grouped_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """The indices, ascending, that greedy NMS keeps within each group: torchvision's `batched_nms`
    as a set, with its IoU in float32 as its kernels compute it, and without its coordinate
    offsets, which round boxes of high group indices. Equal scores order by position.

    All groups at once: on a CUDA device in one launch of models/nms_cuda.py (a block a group),
    elsewhere as Cluster-NMS (Zheng et al., 2021) over every group's suppression matrix."""
    if len(boxes) == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = _ordered(groups, scores)
    _, counts = torch.unique_consecutive(groups[order], return_counts=True)
    ordered = boxes[order].float()
    width = int(counts.max())
    nms_cuda = _nms_cuda() if boxes.is_cuda else None
    if nms_cuda is not None and width <= nms_cuda.MAX_GROUP:
        kept = nms_cuda.kept(ordered, counts, width, iou_threshold)
    else:
        kept = _kept_by_fixed_point(ordered, counts, width, iou_threshold)
    return order[kept].sort().values


@cache
def _nms_cuda() -> ModuleType | None:
    """models/nms_cuda.py, or None where numba-cuda cannot compile for this GPU (the dense path)."""
    try:
        from sc2_split.models import nms_cuda

        return nms_cuda
    except Exception as err:  # no numba-cuda, or none that works with this driver
        warnings.warn(f"NMS runs as dense matrices, the CUDA kernel is unavailable: {err}", stacklevel=2)
        return None


def _kept_by_fixed_point(ordered: Tensor, counts: Tensor, width: int, iou_threshold: float) -> Tensor:
    """(N,) bool, what greedy NMS keeps of `ordered` boxes (groups of `counts` one after another, by
    score descending): each group's suppression matrix (box i suppresses a lower-scored box j), then
    "kept: no kept box suppresses it" iterated to its fixed point, which is greedy NMS's result."""
    group = torch.repeat_interleave(counts)
    rank = _ranks(group, counts)
    padded = ordered.new_zeros((len(counts), width, 4))
    padded[group, rank] = ordered
    valid = torch.zeros((len(counts), width), dtype=torch.bool, device=ordered.device)
    valid[group, rank] = True
    chunk = max(1, PAIRS_PER_CHUNK // (width * width))
    kept = torch.cat(
        [
            _fixed_point(_suppression(padded[i : i + chunk], iou_threshold), valid[i : i + chunk])
            for i in range(0, len(counts), chunk)
        ]
    )
    return kept[group, rank]


def _ordered(keys: Tensor, scores: Tensor) -> Tensor:
    """Indices by key, then by score descending; equal scores keep their order (their position)."""
    by_score = scores.argsort(descending=True, stable=True)
    return by_score[keys[by_score].argsort(stable=True)]


def _ranks(owners: Tensor, counts: Tensor) -> Tensor:
    """Each element's position among its owner's, for elements sorted by owner (`counts` per owner)."""
    return torch.arange(len(owners), device=owners.device) - (counts.cumsum(0) - counts)[owners]


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


def _clipped(boxes: Tensor, heights: Tensor, widths: Tensor) -> Tensor:
    """torchvision's clip_boxes_to_image with a bound per box, in the boxes' dtype as there."""
    bounds = torch.stack((widths, heights), -1).to(boxes.dtype)
    pairs = boxes.unflatten(-1, (2, 2))  # (..., [x1 y1] / [x2 y2], [x y])
    return pairs.clamp(min=0).minimum(bounds[..., None, :]).flatten(-2)


def _large_enough(boxes: Tensor, min_size: float) -> Tensor:
    return (boxes[..., 2] - boxes[..., 0] >= min_size) & (boxes[..., 3] - boxes[..., 1] >= min_size)


def _best_per_image(indices: Tensor, scores: Tensor, image: Tensor, limit: int, images: int) -> list[Tensor]:
    """Per image, its `limit` highest-scored of `indices` (ascending), by score descending; equal
    scores by index, as torchvision orders what its NMS keeps."""
    indices = indices[_ordered(image[indices], scores[indices])]
    owners = image[indices]
    counts = torch.bincount(owners, minlength=images)
    rank = _ranks(owners, counts)
    return list(indices[rank < limit].split(counts.clamp(max=limit).tolist()))


def proposals(
    rpn: RegionProposalNetwork, images: ImageList, features: OrderedDict[str, Tensor]
) -> list[Tensor]:
    """RegionProposalNetwork.forward in eval: each image's proposals, by objectness descending."""
    maps = list(features.values())
    objectness, deltas = rpn.head(maps)
    anchors = rpn.anchor_generator(images, maps)
    num_anchors_per_level = [o[0].numel() for o in objectness]
    objectness, deltas = concat_box_prediction_layers(objectness, deltas)
    count = len(anchors)
    boxes = rpn.box_coder.decode(deltas.detach(), anchors).view(count, -1, 4)
    objectness = objectness.detach().reshape(count, -1)

    device = boxes.device
    top = rpn._get_top_n_idx(objectness, num_anchors_per_level)  # torchvision's, batched already
    image = torch.arange(count, device=device)[:, None]
    levels = torch.repeat_interleave(torch.tensor(num_anchors_per_level, device=device))[top]
    scores = torch.sigmoid(objectness[image, top])
    heights, widths = torch.tensor(images.image_sizes, device=device).unbind(1)
    boxes = _clipped(boxes[image, top], heights[:, None], widths[:, None])
    keep = _large_enough(boxes, rpn.min_size) & (scores >= rpn.score_thresh)

    candidates = keep.flatten().nonzero().squeeze(1)
    boxes, scores = boxes.reshape(-1, 4), scores.flatten()
    groups = (image * len(num_anchors_per_level) + levels).flatten()
    kept = candidates[grouped_nms(boxes[candidates], scores[candidates], groups[candidates], rpn.nms_thresh)]
    chosen = _best_per_image(kept, scores, image.expand_as(top).flatten(), rpn.post_nms_top_n(), count)
    return [boxes[i] for i in chosen]


def detections(
    roi_heads: RoIHeads,
    features: OrderedDict[str, Tensor],
    proposals: list[Tensor],
    image_sizes: list[tuple[int, int]],
    original_sizes: list[tuple[int, int]],
) -> Detections:
    """RoIHeads.forward in eval and GeneralizedRCNNTransform.postprocess: each image's detections,
    by score descending, in the pixels of its original size."""
    # roi_align reads NCHW float32: one copy of each pooled level, instead of autocast's cast to
    # float32 (channels-last kept) and then roi_align's own transposing copy. The pooled values are
    # the same, and the box head's autocast rounds them to float16 as it did.
    pool = roi_heads.box_roi_pool
    levels = {
        name: level.to(torch.float32, memory_format=torch.contiguous_format)
        for name, level in features.items()
        if name in pool.featmap_names
    }
    pooled = pool(levels, proposals, image_sizes)
    class_logits, box_regression = roi_heads.box_predictor(roi_heads.box_head(pooled))
    boxes = roi_heads.box_coder.decode(box_regression, proposals)
    scores = F.softmax(class_logits, -1)

    device, count, classes = boxes.device, len(proposals), scores.shape[-1]
    per_image = torch.tensor([len(p) for p in proposals], device=device)
    image = torch.repeat_interleave(per_image)
    sizes = torch.tensor(image_sizes, device=device)
    heights, widths = sizes.unbind(1)
    boxes = _clipped(boxes, heights[image, None], widths[image, None])
    # Every class but the background a candidate of its own, proposal by proposal as torchvision.
    boxes, scores = boxes[:, 1:].reshape(-1, 4), scores[:, 1:].flatten()
    labels = torch.arange(1, classes, device=device).repeat(len(image))
    image = image.repeat_interleave(classes - 1)
    keep = (scores > roi_heads.score_thresh) & _large_enough(boxes, 1e-2)

    candidates = keep.nonzero().squeeze(1)
    groups = image[candidates] * classes + labels[candidates]
    kept = candidates[grouped_nms(boxes[candidates], scores[candidates], groups, roi_heads.nms_thresh)]
    chosen = _best_per_image(kept, scores, image, roi_heads.detections_per_img, count)

    # GeneralizedRCNNTransform.postprocess: its float32 ratios, in the boxes' dtype as there.
    originals = torch.tensor(original_sizes, dtype=torch.float32, device=device)
    ratios = (originals / sizes.float()).to(boxes.dtype)
    scale = ratios.flip(1).repeat(1, 2)  # (width, height, width, height) ratios per image
    return [
        {"boxes": boxes[i] * scale[n], "scores": scores[i], "labels": labels[i]} for n, i in enumerate(chosen)
    ]
