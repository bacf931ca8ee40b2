"""COCO box mAP (pycocotools) of a torchvision-style detector on frames with COCO-format targets."""

import contextlib
import io
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor, nn
from tqdm import tqdm

from sc2_split.data.synthetic import coco_ground_truth

# A batch: uint8 (3, H, W) images and their targets (numpy `boxes` x1y1x2y2, `labels`, `image_id`, ...).
Batch = tuple[list[Tensor], list[dict[str, Any]]]


@torch.no_grad()
def evaluate_detector(
    model: nn.Module,
    batches: Iterable[Batch],
    device: torch.device,
    categories: list[dict[str, Any]] | None = None,
    progress: str | None = None,
) -> dict[str, float]:
    """mAP@[.5:.95] (`map`) and mAP@.5 (`map_50`) of the model, run in eval mode, on these frames;
    categories of the frames' source (default: the procedural shapes); `progress` names a progress bar."""
    model.eval()
    targets: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    interval = 1.0 if sys.stderr.isatty() else 30.0  # a log file gets a line now and then
    bar = tqdm(batches, desc=progress, unit="batch", disable=progress is None, mininterval=interval)
    for images, batch_targets in bar:
        outputs = model([image.to(device).float().div(255) for image in images])
        for target, output in zip(batch_targets, outputs, strict=True):
            targets.append(target)
            detections += coco_detections(int(target["image_id"]), output)
    return coco_map(coco_ground_truth(targets, categories=categories), detections)


def coco_detections(image_id: int, output: dict[str, Tensor]) -> list[dict[str, Any]]:
    """One image's detections (torchvision x1y1x2y2 boxes) as COCO results (x, y, w, h)."""
    boxes = output["boxes"].detach().cpu().numpy().astype(np.float64)
    scores = output["scores"].detach().cpu().numpy().astype(np.float64)
    labels = output["labels"].detach().cpu().numpy()
    return [
        {
            "image_id": image_id,
            "category_id": int(label),
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "score": float(score),
        }
        for (x1, y1, x2, y2), score, label in zip(boxes.tolist(), scores, labels, strict=True)
    ]


def coco_map(ground_truth: dict[str, Any], detections: list[dict[str, Any]]) -> dict[str, float]:
    """mAP@[.5:.95] and mAP@.5 of COCO results against a COCO instances document."""
    if not detections:
        return {"map": 0.0, "map_50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and tables
        gt = COCO()
        gt.dataset = ground_truth
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {"map": float(evaluation.stats[0]), "map_50": float(evaluation.stats[1])}
