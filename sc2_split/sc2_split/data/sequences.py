"""Procedural video: frame sequences of the synthetic shapes, with a moving camera and moving objects.

Video codecs live on what stays the same from frame to frame, so single frames say little about
them. A sequence is a camera looking at a world twice a frame wide (two of `synthetic`'s
backgrounds side by side): it stands still, pans, or drives forward (the view narrows, everything
grows), in segments; some objects move on their own. A sequence depends only on (seed, split,
index, length). Every frame is annotated as in COCO, with `video_id` and `frame_id`; an object that
the frame border or other objects hide for more than half is an ignored region (`iscrowd` 1), as
the still frames never show one.
"""

import math
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from PIL import Image

from sc2_split.data.synthetic import (
    _MIN_VISIBLE,
    _SIZE_RANGE,
    CLASS_NAMES,
    HEIGHT,
    SPLITS,
    WIDTH,
    _background,
    _camera,
    _clutter,
    _composite,
    _rasterize,
    _target,
    coco_ground_truth,
)

FPS = 30
MOTIONS = ("still", "pan", "drive")
_WORLD_WIDTH = 2 * WIDTH
_OBJECTS = (8, 20)  # over a world of two frames: 3 to 10 in view
_SEGMENT_FRAMES = (15, 45)
_PAN_SPEED = (2.0, 6.0)  # world pixels per frame
_DRIVE_ZOOM = (0.985, 0.995)  # view size factor per frame
_MIN_SCALE = 0.5  # world pixels per frame pixel: the closest the camera drives
_MOVING_SHARE = 0.5  # objects that move by themselves
_OBJECT_SPEED = 3.0  # world pixels per frame, at most, per axis
_FRAME_IDS = 100_000  # image_id = video index * _FRAME_IDS + frame + 1


@dataclass
class _Object:
    label: int
    size: float  # world pixels
    x: float
    y: float
    vx: float
    vy: float
    seed: int  # the shape's rotation and colour, the same in every frame


def sequence(split: str, index: int, length: int = 2 * FPS, seed: int = 0) -> list[tuple[np.ndarray, dict]]:
    """The frames of one sequence, uint8 RGB (HEIGHT, WIDTH, 3), each with a target as
    `synthetic.frame` gives plus `video_id` (index + 1) and `frame_id` (0 .. length - 1)."""
    return list(_frames(split, index, length, seed))


def sequences(
    split: str, count: int, length: int = 2 * FPS, seed: int = 0, workers: int = 1
) -> list[list[tuple[np.ndarray, dict]]]:
    """Sequences 0 .. count - 1 of a split, made on up to `workers` processes (each is independent)."""
    if workers > 1 and count > 1:
        with ProcessPoolExecutor(min(workers, count)) as pool:
            return list(pool.map(partial(sequence, split, length=length, seed=seed), range(count)))
    return [sequence(split, index, length, seed) for index in range(count)]


def coco_video_ground_truth(targets: list[dict[str, Any]]) -> dict[str, Any]:
    """A COCO instances document for sequence frames: images carry `video_id` and `frame_id`, and a
    `videos` list names each sequence."""
    document = coco_ground_truth(targets)
    for image, target in zip(document["images"], targets, strict=True):
        image["video_id"], image["frame_id"] = int(target["video_id"]), int(target["frame_id"])
    videos = sorted({int(t["video_id"]) for t in targets})
    document["videos"] = [{"id": v, "name": f"sequence_{v - 1:04d}", "fps": FPS} for v in videos]
    return document


def motion_plan(split: str, index: int, length: int, seed: int = 0) -> list[str]:
    """The camera's motion in each frame of the sequence (one of MOTIONS)."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index, 0])
    plan: list[str] = []
    while len(plan) < length:
        kind = MOTIONS[int(rng.integers(len(MOTIONS)))]
        plan += [kind] * int(rng.integers(_SEGMENT_FRAMES[0], _SEGMENT_FRAMES[1] + 1))
    return plan[:length]


def _frames(split: str, index: int, length: int, seed: int) -> Iterator[tuple[np.ndarray, dict]]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    if index < 0 or length < 1:
        raise ValueError(f"sequence index must be >= 0 and length >= 1, got {index} and {length}")
    rng = np.random.default_rng([seed, SPLITS.index(split), index, 1])
    world = np.concatenate([_clutter(_background(rng), rng) for _ in range(2)], axis=1)
    objects = [_object(rng) for _ in range(int(rng.integers(_OBJECTS[0], _OBJECTS[1] + 1)))]
    contrast, brightness = rng.uniform(0.8, 1.15), rng.uniform(-20, 20)
    blur = rng.uniform(0.3, 1.0) if rng.random() < 0.5 else 0.0
    sigma = rng.uniform(0.0, 4.0)  # sensor noise, every frame anew
    pan = rng.choice([-1.0, 1.0]) * rng.uniform(*_PAN_SPEED)
    zoom = rng.uniform(*_DRIVE_ZOOM)
    cx, cy, scale = rng.uniform(WIDTH / 2, _WORLD_WIDTH - WIDTH / 2), HEIGHT / 2, 1.0
    for frame_id, motion in enumerate(motion_plan(split, index, length, seed)):
        if motion == "pan":
            cx += pan
            half = WIDTH * scale / 2
            if not half <= cx <= _WORLD_WIDTH - half:
                pan, cx = -pan, min(max(cx, half), _WORLD_WIDTH - half)
        elif motion == "drive":
            scale = max(scale * zoom, _MIN_SCALE)
        view = (cx - WIDTH * scale / 2, cy - HEIGHT * scale / 2, scale)
        noise = np.random.default_rng([seed, SPLITS.index(split), index, 2, frame_id])
        image, target = _render(world, objects, view, noise, (contrast, brightness, blur, sigma))
        target.update(
            image_id=index * _FRAME_IDS + frame_id + 1, video_id=index + 1, frame_id=frame_id, motion=motion
        )
        yield image, target
        for obj in objects:
            _move(obj)


def _object(rng: np.random.Generator) -> _Object:
    moving = rng.random() < _MOVING_SHARE
    vx, vy = rng.uniform(-_OBJECT_SPEED, _OBJECT_SPEED, size=2) if moving else (0.0, 0.0)
    return _Object(
        label=int(rng.integers(len(CLASS_NAMES))) + 1,
        size=math.exp(rng.uniform(*np.log(_SIZE_RANGE))) * 0.8,  # room to grow as the camera drives
        x=rng.uniform(0, _WORLD_WIDTH),
        y=rng.uniform(0, HEIGHT),
        vx=float(vx),
        vy=float(vy),
        seed=int(rng.integers(2**31)),
    )


def _move(obj: _Object) -> None:
    """One frame of the object's own motion; it bounces off the world's edges."""
    obj.x, obj.y = obj.x + obj.vx, obj.y + obj.vy
    if not 0 <= obj.x <= _WORLD_WIDTH:
        obj.vx = -obj.vx
    if not 0 <= obj.y <= HEIGHT:
        obj.vy = -obj.vy


def _render(
    world: np.ndarray,
    objects: list[_Object],
    view: tuple[float, float, float],
    noise: np.random.Generator,
    camera: tuple[float, float, float, float],
) -> tuple[np.ndarray, dict]:
    left, top, scale = view
    box = (left, top, left + WIDTH * scale, top + HEIGHT * scale)
    background = Image.fromarray(np.clip(world, 0, 255).astype(np.uint8))
    canvas = np.asarray(background.resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR, box=box), np.float32)
    owner = np.zeros((HEIGHT, WIDTH), np.int16)
    placed: list[tuple[int, int, int, int, int]] = []
    full: list[int] = []
    for obj in objects:
        shape_rng = np.random.default_rng(obj.seed)
        alpha = _rasterize(CLASS_NAMES[obj.label - 1], obj.size / scale, shape_rng)
        cx, cy = (obj.x - left) / scale, (obj.y - top) / scale
        x0f, y0f = round(cx - alpha.shape[1] / 2), round(cy - alpha.shape[0] / 2)
        x0, y0 = max(x0f, 0), max(y0f, 0)
        x1, y1 = min(x0f + alpha.shape[1], WIDTH), min(y0f + alpha.shape[0], HEIGHT)
        if x1 <= x0 or y1 <= y0:
            continue
        inside = alpha[y0 - y0f : y1 - y0f, x0 - x0f : x1 - x0f]
        mask = inside >= 0.5
        owner[y0:y1, x0:x1][mask] = len(placed) + 1
        placed.append((obj.label, x0, y0, x1, y1))
        full.append(int((alpha >= 0.5).sum()))
        canvas[y0:y1, x0:x1] = _composite(canvas[y0:y1, x0:x1], inside, shape_rng)
    target = _target(owner, placed, 0)
    seen = {i + 1 for i in range(len(placed))} & set(np.unique(owner).tolist())
    shares = [int((owner == i + 1).sum()) / max(full[i], 1) for i in range(len(placed)) if i + 1 in seen]
    target["iscrowd"] = (np.asarray(shares, np.float32) < _MIN_VISIBLE).astype(np.int64)
    return _camera(canvas, *camera, noise), target
