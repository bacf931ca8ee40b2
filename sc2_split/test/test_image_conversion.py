"""Camera messages become the uint8 RGB frames the head takes, whatever the encoding and row padding,
and a malformed message is a clear ValueError, never a crash or a garbled frame."""

import array
import io

import numpy as np
import pytest
from PIL import Image as PilImage
from sc2_split.ros.image_conversion import compressed_to_rgb, image_to_rgb, rgb_to_image, to_rgb
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

HEIGHT, WIDTH = 6, 8
RGB = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
ALPHA = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 1), dtype=np.uint8)


def image(pixels: np.ndarray, encoding: str, padding: int = 0, is_bigendian: bool = False) -> Image:
    """An Image whose rows are `pixels` (H, W, bytes per pixel) followed by `padding` junk bytes."""
    height, width, bpp = pixels.shape
    junk = np.full((height, padding), 0xEE, dtype=np.uint8)
    rows = np.concatenate([pixels.reshape(height, width * bpp), junk], axis=1)
    return Image(
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=is_bigendian,
        step=width * bpp + padding,
        data=array.array("B", rows.tobytes()),
    )


PACKED = {
    "rgb8": RGB,
    "bgr8": RGB[..., ::-1],
    "rgba8": np.concatenate([RGB, ALPHA], axis=2),
    "bgra8": np.concatenate([RGB[..., ::-1], ALPHA], axis=2),
}


@pytest.mark.parametrize("padding", [0, 5])
@pytest.mark.parametrize("encoding", sorted(PACKED))
def test_color_encodings_give_the_rgb_pixels(encoding: str, padding: int) -> None:
    out = image_to_rgb(image(PACKED[encoding], encoding, padding))
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize("padding", [0, 3])
def test_mono8_repeats_the_gray_value(padding: int) -> None:
    gray = RGB[..., :1]
    np.testing.assert_array_equal(image_to_rgb(image(gray, "mono8", padding)), np.repeat(gray, 3, axis=2))


def test_is_bigendian_does_not_matter_for_one_byte_channels() -> None:
    np.testing.assert_array_equal(image_to_rgb(image(RGB, "rgb8", is_bigendian=True)), RGB)


def bt601_reference(y: int, u: int, v: int) -> tuple[int, int, int]:
    """One pixel by the BT.601 definitions (video range: Y 16..235, U and V 16..240 around 128)."""
    luma, pb, pr = (y - 16) / 219, (u - 128) / 224, (v - 128) / 224
    r = luma + 1.402 * pr
    b = luma + 1.772 * pb
    g = (luma - 0.299 * r - 0.114 * b) / 0.587
    return tuple(int(min(255, max(0, round(255 * c)))) for c in (r, g, b))


def yuv422(order: str, padding: int = 0) -> tuple[Image, np.ndarray]:
    """A 4:2:2 frame packed in `order` (UYVY or YUYV) and its reference RGB."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
    u = rng.integers(0, 256, (HEIGHT, WIDTH // 2), dtype=np.uint8)
    v = rng.integers(0, 256, (HEIGHT, WIDTH // 2), dtype=np.uint8)
    planes = {"Y0": y[:, 0::2], "Y1": y[:, 1::2], "U": u, "V": v}
    names = ["U", "Y0", "V", "Y1"] if order == "UYVY" else ["Y0", "U", "Y1", "V"]
    packed = np.stack([planes[n] for n in names], axis=-1).reshape(HEIGHT, WIDTH, 2)
    expected = np.array(
        [[bt601_reference(y[r, c], u[r, c // 2], v[r, c // 2]) for c in range(WIDTH)] for r in range(HEIGHT)],
        dtype=np.uint8,
    )
    encoding = {"UYVY": "yuv422", "YUYV": "yuv422_yuy2"}[order]
    return image(packed, encoding, padding), expected


@pytest.mark.parametrize("padding", [0, 4])
@pytest.mark.parametrize("order", ["UYVY", "YUYV"])
def test_yuv422_matches_the_bt601_reference(order: str, padding: int) -> None:
    msg, expected = yuv422(order, padding)
    out = image_to_rgb(msg).astype(int)
    assert np.abs(out - expected).max() <= 1
    # The aliases newer sensor_msgs define name the same byte orders.
    msg.encoding = {"UYVY": "uyvy", "YUYV": "yuyv"}[order]
    np.testing.assert_array_equal(image_to_rgb(msg), out)


def test_yuv422_video_range_ends_are_black_and_white() -> None:
    uyvy = np.array([[[128, 16], [128, 235]]], dtype=np.uint8)  # U Y0 V Y1
    np.testing.assert_array_equal(image_to_rgb(image(uyvy, "yuv422")), [[[0, 0, 0], [255, 255, 255]]])


def encoded(rgb: np.ndarray, fmt: str, mode: str = "RGB") -> CompressedImage:
    buffer = io.BytesIO()
    PilImage.fromarray(rgb).convert(mode).save(buffer, format=fmt)
    return CompressedImage(format=fmt.lower(), data=array.array("B", buffer.getvalue()))


def test_png_decodes_exactly_in_any_mode() -> None:
    np.testing.assert_array_equal(compressed_to_rgb(encoded(RGB, "PNG")), RGB)
    np.testing.assert_array_equal(compressed_to_rgb(encoded(RGB, "PNG", "RGBA")), RGB)
    gray = compressed_to_rgb(encoded(RGB, "PNG", "L"))
    assert gray.shape == RGB.shape and (gray[..., 0] == gray[..., 2]).all()


def test_jpeg_decodes_to_rgb() -> None:
    smooth = np.linspace(0, 255, 32 * 48 * 3).reshape(32, 48, 3).astype(np.uint8)
    msg = encoded(smooth, "JPEG")
    msg.format = "bgr8; jpeg compressed bgr8"  # image_transport's label: the file itself is standard JPEG
    out = to_rgb(msg)
    assert out.shape == smooth.shape and np.abs(out.astype(int) - smooth).mean() < 4


def test_rgb_to_image_round_trips() -> None:
    header = Header(frame_id="camera")
    msg = rgb_to_image(RGB, header)
    assert (msg.encoding, msg.step, msg.header.frame_id) == ("rgb8", 3 * WIDTH, "camera")
    np.testing.assert_array_equal(to_rgb(msg), RGB)


def with_fields(msg: Image, **fields: object) -> Image:
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


BAD_IMAGES = {
    "unknown encoding": (
        with_fields(image(RGB, "rgb8"), encoding="bayer_rggb8"),
        "unsupported image encoding",
    ),
    "16-bit encoding": (with_fields(image(RGB, "rgb8"), encoding="rgb16"), "unsupported image encoding"),
    "zero width": (with_fields(image(RGB, "rgb8"), width=0), "zero size"),
    "zero height": (with_fields(image(RGB, "rgb8"), height=0), "zero size"),
    "step below width": (with_fields(image(RGB, "rgb8"), step=3 * WIDTH - 1), "step"),
    "data short": (
        with_fields(image(RGB, "rgb8", padding=2), data=array.array("B", bytes(10))),
        "less than step",
    ),
    "last row short": (
        with_fields(image(RGB, "rgb8"), data=array.array("B", RGB.tobytes()[:-1])),
        "less than step",
    ),
    "odd yuv width": (image(np.zeros((2, 3, 2), np.uint8), "yuv422"), "even width"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_are_clear_value_errors(case: str) -> None:
    msg, message = BAD_IMAGES[case]
    with pytest.raises(ValueError, match=message):
        to_rgb(msg)


def test_frames_over_the_pixel_limit_are_refused_before_decoding() -> None:
    with pytest.raises(ValueError, match="larger than the limit"):
        image_to_rgb(image(RGB, "rgb8"), max_pixels=HEIGHT * WIDTH - 1)
    with pytest.raises(ValueError, match="larger than the limit"):
        compressed_to_rgb(encoded(RGB, "PNG"), max_pixels=HEIGHT * WIDTH - 1)


BAD_COMPRESSED = {
    "empty": b"",
    "garbage": b"not an image at all",
    "truncated jpeg": bytes(encoded(RGB, "JPEG").data)[:40],
    "gif": bytes(encoded(RGB, "GIF").data),
    # image_transport's compressedDepth: a 12-byte header before the PNG.
    "compressed depth": bytes(12) + bytes(encoded(RGB, "PNG").data),
}


@pytest.mark.parametrize("case", sorted(BAD_COMPRESSED))
def test_bad_compressed_images_are_clear_value_errors(case: str) -> None:
    msg = CompressedImage(format="jpeg", data=array.array("B", BAD_COMPRESSED[case]))
    with pytest.raises(ValueError, match="compressed image"):
        to_rgb(msg)
