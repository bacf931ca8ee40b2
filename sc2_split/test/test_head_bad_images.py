"""A head node given camera frames it cannot read logs what is wrong with each, counts it in
`bad_frames` on /diagnostics and goes on: a frame as large as a camera makes is still encoded, and a
good frame afterwards still gives a bottleneck.

Long: about 65 s, mostly waiting, since the head logs at most one bad frame per 5 s and the
bad frames are sent that far apart for each to be logged."""

import array
import io
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image as PilImage
from rclpy.publisher import Publisher
from sc2_split.ros.image_conversion import rgb_to_image
from sc2_split.ros.topics import camera_qos
from sc2_split.testing.node_process import node_process
from sensor_msgs.msg import CompressedImage, Image
from split_fixtures import FRAME_ID, HEIGHT, WIDTH, Camera, head_params
from std_msgs.msg import Header

from sc2_split_msgs.msg import Bottleneck

# The head logs a bad frame at most this often (head_node.py's throttle_duration_sec).
BAD_FRAME_LOG_PERIOD_S = 5.0
# A 4K UHD frame: far larger than the head's input, well within MAX_PIXELS.
HUGE_HEIGHT, HUGE_WIDTH = 2160, 3840


def image(height: int, width: int, step: int, encoding: str = "rgb8", size: int | None = None) -> Image:
    data = array.array("B", bytes(step * height if size is None else size))
    return Image(height=height, width=width, step=step, encoding=encoding, data=data)


# (what is wrong, the message, what the head's log line says about it)
BAD_IMAGES = [
    (
        "unknown encoding",
        image(HEIGHT, WIDTH, WIDTH, "bayer_rggb8"),
        "unsupported image encoding 'bayer_rggb8'",
    ),
    ("zero width", image(HEIGHT, 0, 0), f"image has zero size (0x{HEIGHT})"),
    ("zero height", image(0, WIDTH, 3 * WIDTH), f"image has zero size ({WIDTH}x0)"),
    ("short step", image(HEIGHT, WIDTH, 3 * WIDTH - 1), f"step {3 * WIDTH - 1} is less than width {WIDTH}"),
    ("short data", image(HEIGHT, WIDTH, 3 * WIDTH, size=100), "image data is 100 bytes, less than step"),
    ("odd yuv422 width", image(HEIGHT, WIDTH + 1, 2 * WIDTH + 2, "yuv422"), "need an even width"),
    ("enormous declared size", image(100_000, 100_000, 300_000, size=64), "larger than the limit"),
]


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds almost none."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(64)))
        + chunk(b"IEND", b"")
    )


def encoded(rgb: np.ndarray, format_name: str) -> bytes:
    buffer = io.BytesIO()
    PilImage.fromarray(rgb).save(buffer, format_name)
    return buffer.getvalue()


FRAME = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
JPEG = encoded(FRAME, "JPEG")
BAD_COMPRESSED = [
    ("truncated JPEG", CompressedImage(format="jpeg", data=JPEG[: len(JPEG) // 2]), "cannot be decoded"),
    ("random bytes", CompressedImage(format="jpeg", data=bytes(range(256)) * 8), "is not a JPEG or PNG"),
    ("BMP", CompressedImage(format="bmp", data=encoded(FRAME, "BMP")), "('bmp', 36918 bytes) is not a JPEG"),
    ("PNG bomb", CompressedImage(format="png", data=png_header(100_000, 100_000)), "exceeds limit"),
]


def send_bad_frames(
    camera: Camera, publisher: Publisher, cases: list[tuple], process: subprocess.Popen, log: Path
) -> None:
    """Each bad frame once the head has logged the one before; waits until the head counted it."""
    for i, (what, msg, _) in enumerate(cases):
        msg.header = Header(stamp=camera.node.get_clock().now().to_msg(), frame_id=FRAME_ID)
        publisher.publish(msg)
        camera.spin_until(lambda i=i: camera.counter("/head", "bad_frames") == i + 1, f"the {what} to count")
        assert process.poll() is None, f"the head exited on the {what}:\n{log.read_text()}"
        camera.spin_for(BAD_FRAME_LOG_PERIOD_S)
    lines = [line for line in log.read_text().splitlines() if "skipped a bad frame" in line]
    for i, (what, _, says) in enumerate(cases):
        assert f"({i + 1} so far)" in lines[i] and says in lines[i], f"{what}: {lines}"


def wait_for_bottleneck(camera: Camera, header: Header) -> Bottleneck:
    camera.spin_until(lambda: any(b.header == header for b in camera.bottlenecks), "its bottleneck")
    return next(b for b in camera.bottlenecks if b.header == header)


def test_head_counts_bad_raw_frames_and_goes_on(
    exported_head: dict[str, str], camera: Camera, ros_env: dict[str, str], tmp_path: Path
) -> None:
    publisher = camera.node.create_publisher(Image, "image", camera_qos("reliable"))
    params = head_params(exported_head, qos_reliability="reliable")
    log = tmp_path / "head.log"
    with node_process("head_node", "head.yaml", params, ros_env, log) as process:
        camera.spin_until(lambda: publisher.get_subscription_count() >= 1, "the head to subscribe")
        camera.spin_until(lambda: "/head" in camera.diagnostics.counters, "the head's counters")
        send_bad_frames(camera, publisher, BAD_IMAGES, process, log)

        huge = np.random.default_rng(1).integers(0, 256, (HUGE_HEIGHT, HUGE_WIDTH, 3), dtype=np.uint8)
        header = Header(stamp=camera.node.get_clock().now().to_msg(), frame_id=FRAME_ID)
        started = time.monotonic()
        publisher.publish(rgb_to_image(huge, header))
        bottleneck = wait_for_bottleneck(camera, header)
        print(f"\n{HUGE_WIDTH}x{HUGE_HEIGHT} frame encoded in {time.monotonic() - started:.2f} s")
        assert (bottleneck.image_height, bottleneck.image_width) == (HUGE_HEIGHT, HUGE_WIDTH)

        header = Header(stamp=camera.node.get_clock().now().to_msg(), frame_id=FRAME_ID)
        publisher.publish(rgb_to_image(FRAME, header))
        assert wait_for_bottleneck(camera, header).image_width == WIDTH
        camera.spin_until(lambda: camera.counter("/head", "encoded_frames") == 2, "the head's counters")
        assert process.poll() is None
    counters = camera.diagnostics.counters["/head"]
    print(f"head counters: {counters}")
    assert counters["bad_frames"] == len(BAD_IMAGES) and counters["failed_frames"] == 0
    assert counters["received_frames"] == len(BAD_IMAGES) + 2


def test_head_counts_bad_compressed_frames_and_goes_on(
    exported_head: dict[str, str], camera: Camera, ros_env: dict[str, str], tmp_path: Path
) -> None:
    publisher = camera.node.create_publisher(CompressedImage, "image/compressed", camera_qos("reliable"))
    params = head_params(exported_head, qos_reliability="reliable", image_transport="compressed")
    log = tmp_path / "head.log"
    with node_process("head_node", "head.yaml", params, ros_env, log) as process:
        camera.spin_until(lambda: publisher.get_subscription_count() >= 1, "the head to subscribe")
        camera.spin_until(lambda: "/head" in camera.diagnostics.counters, "the head's counters")
        send_bad_frames(camera, publisher, BAD_COMPRESSED, process, log)

        header = Header(stamp=camera.node.get_clock().now().to_msg(), frame_id=FRAME_ID)
        publisher.publish(CompressedImage(header=header, format="jpeg", data=JPEG))
        assert wait_for_bottleneck(camera, header).image_width == WIDTH
        camera.spin_until(lambda: camera.counter("/head", "encoded_frames") == 1, "the head's counters")
    counters = camera.diagnostics.counters["/head"]
    print(f"\nhead counters: {counters}")
    assert counters["bad_frames"] == len(BAD_COMPRESSED) and counters["failed_frames"] == 0
