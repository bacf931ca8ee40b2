"""Procedural detection frames: coloured shapes, rotated and partly hidden, on cluttered backgrounds.

The published COCO checkpoints cannot be downloaded, so the demo detector learns these instead. A
frame depends only on (seed, split, index): the train, val and test splits are generated on the fly
and never stored. Backgrounds are crops of the photos that ship inside scikit-image (no download)
and procedural textures, with lines and arcs as clutter; frames get blur and sensor noise.

A box is the visible extent of its object, as in COCO: the pixels the object still covers once the
objects drawn after it are on top. Placement keeps every object at least half visible.
"""

import argparse
import colorsys
import io
import json
import math
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from sc2_split.data import SAMPLES_DIR

WIDTH, HEIGHT = 640, 480
CLASS_NAMES = ("circle", "rectangle", "triangle", "star", "cross", "ring")  # category ids 1..6
SPLITS = ("train", "val", "test")

_SIZE_RANGE = (20.0, 250.0)  # diameter of the circle around an object, in pixels, log-uniform
_OBJECTS_PER_FRAME = (3, 12)
_MIN_VISIBLE = 0.5  # share of an object's pixels that must stay visible (frame border included)
_SUPERSAMPLE = 2  # shapes are drawn this much larger and averaged down, for smooth edges
# Photos and textures shipped inside scikit-image's wheel (skimage.data loads them without network).
_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
_GRAY_TEXTURES = ("brick", "grass", "gravel", "camera", "coins", "moon", "page", "text", "clock")


def frame(split: str, index: int, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """One frame, uint8 RGB (HEIGHT, WIDTH, 3), and its target.

    The target follows torchvision's detection references: `boxes` (N, 4) float32 x1, y1, x2, y2 in
    pixel edges, `labels` (N,) int64 category ids 1..len(CLASS_NAMES), `area` (N,) visible pixels,
    `iscrowd` (N,) zeros and `image_id` (index + 1, as COCO ids start at 1).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    if index < 0:
        raise ValueError(f"frame index must be >= 0, got {index}")
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    canvas = _clutter(_background(rng), rng)
    owner = np.zeros((HEIGHT, WIDTH), np.int16)  # 1 + index of the object seen at each pixel
    placed: list[tuple[int, int, int, int, int]] = []  # label, crop x0, y0, x1, y1
    visible, full = np.zeros(0, np.int64), np.zeros(0, np.int64)  # pixels of each object: seen, all
    wanted = int(rng.integers(_OBJECTS_PER_FRAME[0], _OBJECTS_PER_FRAME[1] + 1))
    for _ in range(4 * wanted):
        if len(placed) == wanted:
            break
        label = int(rng.integers(len(CLASS_NAMES))) + 1
        shape = _place_shape(label, rng)
        if shape is None:
            continue
        alpha, x0, y0, area = shape
        mask = alpha >= 0.5
        x1, y1 = x0 + alpha.shape[1], y0 + alpha.shape[0]
        region = owner[y0:y1, x0:x1]
        covered = np.bincount(region[mask], minlength=len(placed) + 1)[1:]
        if np.any(visible - covered < _MIN_VISIBLE * full):
            continue
        region[mask] = len(placed) + 1
        visible = np.append(visible - covered, mask.sum())
        full = np.append(full, area)
        placed.append((label, x0, y0, x1, y1))
        canvas[y0:y1, x0:x1] = _composite(canvas[y0:y1, x0:x1], alpha, rng)
    image = _finish(canvas, rng)
    return image, _target(owner, placed, index)


def frames(
    split: str, count: int, seed: int = 0, start: int = 0
) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    """Frames start .. start + count - 1 of a split, in order, without touching the disk."""
    for index in range(start, start + count):
        yield frame(split, index, seed)


def coco_ground_truth(
    targets: list[dict[str, Any]],
    file_names: list[str] | None = None,
    categories: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A COCO instances document (images, annotations, categories) for these targets; categories
    default to the procedural shapes (another source's, for evaluating on it)."""
    images, annotations = [], []
    for i, target in enumerate(targets):
        image_id = int(target["image_id"])
        image = {"id": image_id, "width": WIDTH, "height": HEIGHT}
        if file_names is not None:
            image["file_name"] = file_names[i]
        images.append(image)
        columns = (target["boxes"], target["labels"], target["area"], target["iscrowd"])
        for box, label, area, crowd in zip(*columns, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": float(area),
                    "iscrowd": int(crowd),  # 1: an ignored region (a sequence's mostly hidden object)
                }
            )
    if categories is None:
        categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASS_NAMES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_split(folder: str | Path, split: str, count: int, seed: int = 0, start: int = 0) -> Path:
    """Frames start .. start + count - 1 of a split as PNG files plus their COCO annotations
    (instances.json): the procedural set as a COCO-format source like any other, for training
    with augmentation or for other tools; returns the json path."""
    indexes = tqdm(range(start, start + count), desc=f"writing {split}", unit="frame", disable=None)
    return _write(folder, ((split, i, *frame(split, i, seed)) for i in indexes))


def write_samples(folder: str | Path, count: int = 8, max_png_bytes: int = 250_000, seed: int = 0) -> Path:
    """The demo's bundled frames: the first test frames whose PNG stays under max_png_bytes (noisy
    frames compress badly), so that the package stays small; returns the instances.json path."""

    def small_frames() -> Iterator[tuple[str, int, np.ndarray, dict[str, Any]]]:
        found, index = 0, 0
        while found < count:
            image, target = frame("test", index, seed)
            if len(_png(image)) <= max_png_bytes:
                found += 1
                yield "test", index, image, target
            index += 1

    return _write(folder, small_frames())


def _write(folder: str | Path, items: Iterable[tuple[str, int, np.ndarray, dict[str, Any]]]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    targets, names = [], []
    for split, index, image, target in items:
        name = f"{split}_{index:06d}.png"
        (folder / name).write_bytes(_png(image))
        targets.append(target)
        names.append(name)
    path = folder / "instances.json"
    path.write_text(json.dumps(coco_ground_truth(targets, names), indent=1))
    return path


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _target(owner: np.ndarray, placed: list[tuple[int, int, int, int, int]], index: int) -> dict[str, Any]:
    boxes, labels, areas = [], [], []
    for i, (label, x0, y0, x1, y1) in enumerate(placed):
        seen = owner[y0:y1, x0:x1] == i + 1
        rows, cols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
        if rows.size == 0:
            continue
        boxes.append([x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1])
        labels.append(label)
        areas.append(int(seen.sum()))
    return {
        "image_id": index + 1,
        "boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
        "labels": np.asarray(labels, np.int64),
        "area": np.asarray(areas, np.float32),
        "iscrowd": np.zeros(len(labels), np.int64),
    }


def _place_shape(label: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int, int] | None:
    """A shape at a random place: its coverage inside the frame, top-left corner and full area in
    pixels; None where the frame border would cut off more than the visibility rule allows."""
    size = math.exp(rng.uniform(*np.log(_SIZE_RANGE)))
    cx, cy = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
    alpha = _rasterize(CLASS_NAMES[label - 1], size, rng)
    left, top = round(cx - alpha.shape[1] / 2), round(cy - alpha.shape[0] / 2)
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + alpha.shape[1], WIDTH), min(top + alpha.shape[0], HEIGHT)
    if x1 <= x0 or y1 <= y0:
        return None
    inside = alpha[y0 - top : y1 - top, x0 - left : x1 - left]
    area = int((alpha >= 0.5).sum())
    if (inside >= 0.5).sum() < _MIN_VISIBLE * area:
        return None
    return inside, x0, y0, area


def _rasterize(kind: str, size: float, rng: np.random.Generator) -> np.ndarray:
    """Coverage in [0, 1] of a shape of this diameter, rotated at random, on a square crop."""
    side = math.ceil(size) + 2
    s = _SUPERSAMPLE
    r, c = size * s / 2, side * s / 2
    image = Image.new("L", (side * s, side * s), 0)
    draw = ImageDraw.Draw(image)
    angle = rng.uniform(0, 2 * math.pi)
    if kind in ("circle", "ring"):
        draw.ellipse((c - r, c - r, c + r, c + r), fill=255)
        if kind == "ring":
            inner = r * rng.uniform(0.4, 0.7)
            draw.ellipse((c - inner, c - inner, c + inner, c + inner), fill=0)
    else:
        draw.polygon(_polygon(kind, r, angle, c, rng), fill=255)
    small = image.resize((side, side), Image.Resampling.BOX)
    return np.asarray(small, np.float32) / 255.0


def _polygon(
    kind: str, r: float, angle: float, c: float, rng: np.random.Generator
) -> list[tuple[float, float]]:
    if kind == "rectangle":
        half = math.atan(rng.uniform(0.3, 1.0))  # half the angle the short side spans: the aspect
        polar = [(r, a) for a in (half, math.pi - half, math.pi + half, -half)]
    elif kind == "triangle":
        polar = [(r * rng.uniform(0.85, 1.0), k * 2 * math.pi / 3 + rng.uniform(-0.2, 0.2)) for k in range(3)]
    elif kind == "star":
        points, inner = int(rng.integers(5, 7)), rng.uniform(0.35, 0.55)
        polar = [(r if k % 2 == 0 else r * inner, k * math.pi / points) for k in range(2 * points)]
    elif kind == "cross":
        arm = r * rng.uniform(0.2, 0.35)  # half width of an arm; its far corners lie on the circle
        length = math.sqrt(r * r - arm * arm)
        quarter = [(length, -arm), (length, arm), (arm, arm)]
        points = []
        for k in range(4):
            cos, sin = math.cos(k * math.pi / 2), math.sin(k * math.pi / 2)
            points += [(x * cos - y * sin, x * sin + y * cos) for x, y in quarter]
        polar = [(math.hypot(x, y), math.atan2(y, x)) for x, y in points]
    else:
        raise ValueError(f"unknown shape {kind!r}")
    return [(c + d * math.cos(a + angle), c + d * math.sin(a + angle)) for d, a in polar]


def _composite(region: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The region with a shape painted over it: a random colour, shaded, sometimes striped."""
    rgb = np.asarray(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.25, 1.0), rng.uniform(0.3, 1.0)))
    h, w = alpha.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    direction = rng.uniform(0, 2 * math.pi)
    along = ((xx - w / 2) * math.cos(direction) + (yy - h / 2) * math.sin(direction)) / max(h, w)
    shade = 1.0 + rng.uniform(-0.7, 0.7) * along
    if rng.random() < 0.3:
        across = xx * math.sin(direction) - yy * math.cos(direction)
        shade = shade * (1.0 + 0.2 * np.sign(np.sin(across / rng.uniform(4, 16))))
    paint = np.clip(255.0 * rgb[None, None, :] * shade[..., None], 0, 255)
    a = alpha[..., None]
    return region * (1.0 - a) + paint * a


def _background(rng: np.random.Generator) -> np.ndarray:
    """float32 (HEIGHT, WIDTH, 3) in [0, 255]: a photo crop, a procedural texture, or a blend."""
    choice = rng.random()
    if choice < 0.5:
        return _photo_crop(rng)
    if choice < 0.8:
        return _texture(rng)
    weight = rng.uniform(0.3, 0.7)
    return weight * _photo_crop(rng) + (1.0 - weight) * _texture(rng)


def _photo_crop(rng: np.random.Generator) -> np.ndarray:
    photo = _photos()[int(rng.integers(len(_PHOTOS)))]
    crop = _random_crop(photo, rng)
    gains = rng.uniform(0.75, 1.25, size=3).astype(np.float32)
    return np.asarray(crop, np.float32) * gains


def _texture(rng: np.random.Generator) -> np.ndarray:
    """Smooth colour field, a sinusoidal grating and a grey texture's luminance, mixed at random."""
    grid = rng.uniform(0, 255, size=(int(rng.integers(2, 7)), int(rng.integers(2, 9)), 3)).astype(np.uint8)
    field = np.asarray(Image.fromarray(grid).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC), np.float32)
    xx = np.arange(WIDTH, dtype=np.float32)[None, :]
    yy = np.arange(HEIGHT, dtype=np.float32)[:, None]
    theta, period = rng.uniform(0, math.pi), rng.uniform(6, 80)
    grating = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * (2 * math.pi / period))
    tint = rng.uniform(-60, 60, size=3).astype(np.float32)
    gray = _gray_textures()[int(rng.integers(len(_GRAY_TEXTURES)))]
    luminance = np.asarray(_random_crop(gray, rng), np.float32) / 128.0
    mix = rng.uniform(0.2, 0.8)
    out = field * ((1 - mix) + mix * luminance)[..., None] + grating[..., None] * tint
    return np.clip(out, 0, 255)


def _random_crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A 4:3 crop of random scale and place, resized to the frame size and sometimes mirrored."""
    w, h = image.size
    crop_w = min(w, h * 4 / 3) * rng.uniform(0.35, 1.0)
    crop_h = crop_w * 3 / 4
    x0, y0 = rng.uniform(0, w - crop_w), rng.uniform(0, h - crop_h)
    out = image.resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR, box=(x0, y0, x0 + crop_w, y0 + crop_h))
    return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else out


def _clutter(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lines and arcs that belong to no class, so that edges alone do not mean an object."""
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 13))):
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        x, y = rng.uniform(-50, WIDTH + 50, size=2), rng.uniform(-50, HEIGHT + 50, size=2)
        width = int(rng.integers(1, 6))
        if rng.random() < 0.7:
            draw.line([(x[0], y[0]), (x[1], y[1])], fill=colour, width=width)
        else:
            box = (min(x), min(y), max(x), max(y))
            start = rng.uniform(0, 360)
            draw.arc(box, start, start + rng.uniform(30, 200), fill=colour, width=width)
    return np.asarray(image, np.float32)


def _finish(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera effects on the whole frame: contrast and brightness, blur, then sensor noise."""
    contrast, brightness = rng.uniform(0.7, 1.2), rng.uniform(-25, 25)
    blur = rng.uniform(0.3, 1.5) if rng.random() < 0.5 else 0.0
    sigma = rng.uniform(0, 10) if rng.random() < 0.7 else 0.0
    return _camera(canvas, contrast, brightness, blur, sigma, rng)


def _camera(
    canvas: np.ndarray,
    contrast: float,
    brightness: float,
    blur: float,
    sigma: float,
    rng: np.random.Generator,
) -> np.ndarray:
    canvas = (canvas - 128.0) * contrast + 128.0 + brightness
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    if blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    out = np.asarray(image, np.float32)
    if sigma > 0:
        out = out + rng.standard_normal(out.shape, dtype=np.float32) * sigma
    return np.clip(out, 0, 255).astype(np.uint8)


@cache
def _photos() -> tuple[Image.Image, ...]:
    from skimage import data

    return tuple(Image.fromarray(getattr(data, name)()).convert("RGB") for name in _PHOTOS)


@cache
def _gray_textures() -> tuple[Image.Image, ...]:
    from skimage import data

    return tuple(Image.fromarray(getattr(data, name)()).convert("L") for name in _GRAY_TEXTURES)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sc2_split.data.synthetic",
        description="Writes procedural frames as a COCO-format folder (without --out: the bundled samples).",
    )
    parser.add_argument("--out", type=Path, help="folder for the PNG files and instances.json")
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--start", type=int, default=0, help="first frame index")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out is None:
        write_samples(SAMPLES_DIR)
        return
    frames_written = tqdm(
        range(args.start, args.start + args.count), desc=f"writing {args.split}", unit="frame"
    )
    print(_write(args.out, ((args.split, i, *frame(args.split, i, args.seed)) for i in frames_written)))


if __name__ == "__main__":
    main()
