"""Raw camera frames reach the head as they do on a robot: a camera driver in its own process
publishing rgb8 frames best effort (sensor data QoS) at 10 Hz, into head and overlay node processes
with the shipped parameter files, the tail answering, and every process in the environment the
README sets (`source tools/env.sh`: the shipped Fast DDS profile). With Fast DDS's defaults most of
these frames are lost (docs/benchmarks.md, "Camera frames over DDS").

Frames that reached the head are counted from its Bottleneck messages (sequence + 1 +
head_dropped_frames), so that frames a slow encoder skipped for newer ones are not losses.

The robot side (camera, head, overlay, and this test's node, which watches them as RViz would) runs
on the distribution of this test process, the tail on Kilted: under the Jazzy leg of `make test`,
a robot on the older distribution exchanges bottlenecks and detections with an edge server on the
newer one."""

import json
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sc2_split.benchmarks.camera_delivery import frames_reached, stamp_ns
from sc2_split.testing.node_process import node_process
from split_fixtures import Camera
from workspaces import this_leg, workspace

RESOLUTIONS = ((480, 640), (720, 1280))
RATE_HZ = 10.0
FRAMES = 60
# After the camera's last frame: until nothing new arrived for this long.
SETTLE_S = 4.0
# The overlay keeps frame rate x round trip frames (head.yaml: 30, 3 s at 10 Hz). Here the tail is a
# CPU on the same two shared cores, and its round trip reaches 2-3 s (a GPU edge: about 0.1 s).
OVERLAY = {"frame_buffer_size": 60}


@dataclass
class Delivery:
    height: int
    width: int
    sent: int
    rate_hz: float
    reached_head: int
    with_detections: int
    with_overlay: int

    @property
    def delivered(self) -> float:
        return self.reached_head / self.sent

    @property
    def overlaid(self) -> float:
        return self.with_overlay / max(self.with_detections, 1)

    def row(self) -> str:
        return (
            f"{self.width}x{self.height} rgb8 at {self.rate_hz:.1f} Hz: "
            f"{self.reached_head}/{self.sent} frames reached the head ({self.delivered:.1%}); "
            f"{self.with_detections} got detections, "
            f"{self.with_overlay} of them an overlay image ({self.overlaid:.1%})"
        )


def settled(camera: Camera) -> None:
    """Spins until no bottleneck, detections or overlay arrived for SETTLE_S."""
    counts = None
    while counts != (counts := (len(camera.bottlenecks), len(camera.detections), len(camera.overlays))):
        camera.spin_for(SETTLE_S)


def run_camera(camera: Camera, python: str, env: dict[str, str], height: int, width: int) -> dict:
    """The camera driver process at one resolution, once the head and the overlay have subscribed."""
    command = [python, "-m", "sc2_split.testing.camera_source", "--height", str(height), "--width",
               str(width), "--rate", str(RATE_HZ), "--frames", str(FRAMES), "--subscribers", "2"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    camera.spin_until(lambda: process.poll() is not None, "the camera's frames")
    out, err = process.communicate()
    assert process.returncode == 0, err
    return json.loads(out)


def test_best_effort_camera_frames_reach_head_and_overlay(
    camera: Camera, ros_env: dict[str, str], tmp_path: Path
) -> None:
    robot_leg = this_leg()
    robot = workspace(robot_leg, ros_env)
    edge = workspace("kilted", ros_env)
    with ExitStack() as stack:
        for name, params_file, overrides, leg in (("head", "head.yaml", {}, robot),
                                                  ("overlay", "head.yaml", OVERLAY, robot),
                                                  ("tail", "tail.yaml", {}, edge)):  # fmt: skip
            log = tmp_path / f"{name}.log"
            stack.enter_context(
                node_process(f"{name}_node", params_file, overrides, leg.env, log, prefix=leg.prefix)
            )
        camera.spin_until(lambda: bool(camera.label_info), "the tail's label_info")
        camera.spin_until(lambda: camera.node.count_subscribers("/bottleneck") >= 2, "the tail to subscribe")
        results = []
        for height, width in RESOLUTIONS:
            before = frames_reached(camera.bottlenecks)
            sent = run_camera(camera, robot.python, robot.env, height, width)
            settled(camera)
            stamps = set(sent["stamps_ns"])
            detected = {stamp_ns(d.header.stamp) for d in camera.detections} & stamps
            overlaid = {stamp_ns(o.header.stamp) for o in camera.overlays} & detected
            assert {
                (b.image_height, b.image_width)
                for b in camera.bottlenecks
                if stamp_ns(b.header.stamp) in stamps
            } == {(height, width)}
            results.append(Delivery(height, width, sent["sent"], sent["rate_hz"],
                                    frames_reached(camera.bottlenecks) - before, len(detected),
                                    len(overlaid)))  # fmt: skip
    print(f"\ncamera frames over DDS, robot side on {robot_leg}, tail on kilted:")
    for result in results:
        print("  " + result.row())
    for result in results:
        assert result.rate_hz >= RATE_HZ * 0.95, result.row()
        assert result.delivered >= 0.95, result.row()
        assert result.with_detections >= 3 and result.overlaid >= 0.9, result.row()
