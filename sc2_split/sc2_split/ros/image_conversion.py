"""sensor_msgs images to the uint8 RGB arrays the head takes, and back for the overlay. No cv_bridge.

Camera frames come from drivers and bags we do not control, so every size in a message is checked
against the bytes actually there before anything is reshaped, and a clear ValueError names the problem.
"""

import array
import io

import numpy as np
from PIL import Image as PilImage
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from sc2_split.untrusted import shown

# Largest frame accepted: far beyond any camera (8K is 33 Mpx), small enough to bound memory.
MAX_PIXELS = 64 * 1024 * 1024

# Bytes per pixel of each supported encoding. Every channel is one byte, so is_bigendian never matters.
BYTES_PER_PIXEL = {
    "rgb8": 3,
    "bgr8": 3,
    "mono8": 1,
    "rgba8": 4,
    "bgra8": 4,
    "yuv422": 2,  # UYVY, as ROS names it
    "uyvy": 2,
    "yuv422_yuy2": 2,  # YUYV
    "yuyv": 2,
}
YUV_BYTE_ORDER = {"yuv422": "UYVY", "uyvy": "UYVY", "yuv422_yuy2": "YUYV", "yuyv": "YUYV"}
COMPRESSED_FORMATS = ("JPEG", "PNG")


def image_to_rgb(msg: Image, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The frame as a contiguous uint8 RGB (H, W, 3) array, honoring row padding (`step`)."""
    bpp = BYTES_PER_PIXEL.get(msg.encoding)
    if bpp is None:
        raise ValueError(
            f"unsupported image encoding {shown(msg.encoding)}; supported: {', '.join(BYTES_PER_PIXEL)}"
        )
    height, width, step = msg.height, msg.width, msg.step
    _check_size(height, width, max_pixels)
    if step < width * bpp:
        raise ValueError(
            f"image step {step} is less than width {width} x {bpp} bytes per pixel ({msg.encoding})"
        )
    if len(msg.data) < step * height:
        raise ValueError(f"image data is {len(msg.data)} bytes, less than step {step} x height {height}")
    rows = np.frombuffer(msg.data, dtype=np.uint8, count=step * height).reshape(height, step)
    pixels = rows[:, : width * bpp].reshape(height, width, bpp)
    if msg.encoding in YUV_BYTE_ORDER:
        if width % 2:
            raise ValueError(f"{msg.encoding} images need an even width, got {width}")
        return _yuv422_to_rgb(pixels.reshape(height, width // 2, 4), YUV_BYTE_ORDER[msg.encoding])
    if msg.encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if msg.encoding.startswith("bgr"):
        return np.ascontiguousarray(pixels[..., 2::-1])
    return np.ascontiguousarray(pixels[..., :3])


def compressed_to_rgb(msg: CompressedImage, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A JPEG or PNG frame (image_transport's `compressed`) as uint8 RGB (H, W, 3)."""
    try:
        image = PilImage.open(io.BytesIO(bytes(msg.data)), formats=COMPRESSED_FORMATS)
    except PilImage.UnidentifiedImageError as exc:  # its text names an in-memory file object
        raise ValueError(
            f"compressed image ({shown(msg.format)}, {len(msg.data)} bytes) is not a JPEG or PNG"
        ) from exc
    except (OSError, ValueError, PilImage.DecompressionBombError) as exc:
        raise ValueError(
            f"compressed image ({shown(msg.format)}, {len(msg.data)} bytes) is not a JPEG or PNG: {exc}"
        ) from exc
    # The size is in the file header: checked before the pixels are decoded.
    _check_size(image.height, image.width, max_pixels)
    try:
        return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"compressed image ({shown(msg.format)}) cannot be decoded: {exc}") from exc


def to_rgb(msg: Image | CompressedImage, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Either kind of camera message as uint8 RGB (H, W, 3)."""
    if isinstance(msg, CompressedImage):
        return compressed_to_rgb(msg, max_pixels)
    return image_to_rgb(msg, max_pixels)


def rgb_to_image(rgb: np.ndarray, header: Header) -> Image:
    """A uint8 RGB (H, W, 3) array as an rgb8 sensor_msgs/Image without row padding."""
    height, width = rgb.shape[:2]
    return Image(
        header=header,
        height=height,
        width=width,
        encoding="rgb8",
        is_bigendian=False,
        step=3 * width,
        data=array.array("B", np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()),
    )


def _check_size(height: int, width: int, max_pixels: int) -> None:
    if height == 0 or width == 0:
        raise ValueError(f"image has zero size ({width}x{height})")
    if height * width > max_pixels:
        raise ValueError(f"image of {width}x{height} pixels is larger than the limit of {max_pixels} pixels")


def _yuv422_to_rgb(macropixels: np.ndarray, order: str) -> np.ndarray:
    """YUV 4:2:2 (two pixels share U and V) with BT.601 video-range coefficients, as OpenCV and cv_bridge."""
    if order == "UYVY":
        u, y0, v, y1 = (macropixels[..., i].astype(np.float32) for i in range(4))
    else:
        y0, u, y1, v = (macropixels[..., i].astype(np.float32) for i in range(4))
    y = np.stack([y0, y1], axis=-1).reshape(macropixels.shape[0], -1)
    u = np.repeat(u, 2, axis=1) - 128.0
    v = np.repeat(v, 2, axis=1) - 128.0
    y = 1.164 * (y - 16.0)
    rgb = np.stack([y + 1.596 * v, y - 0.391 * u - 0.813 * v, y + 2.018 * u], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
