"""Detections from the robot itself when the edge is gone: the bundled teacher as one ONNX graph on
ONNX Runtime, and the fallback node between real head and tail processes over an emulated uplink. It
detects locally once the link goes down, goes back to the edge when the link returns, and no frame
ever gets two detection messages."""

from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from sc2_split.local_detector import LocalDetector
from sc2_split.testing.link_relay import LinkRelay
from sc2_split.testing.node_process import node_process
from split_fixtures import HEIGHT, WIDTH, Camera, head_params, tail_params

# Longer than the gaps between a busy tail's answers (seconds a frame on 2 shared cores), so that
# only a link that is down starts the fallback.
FALLBACK_AFTER_MS = 8000.0


def test_the_local_detector_finds_boxes_in_any_frame_size(local_model: str) -> None:
    detector = LocalDetector(local_model)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    detections = detector(frame)
    assert detections.boxes.shape == (len(detections.scores), 4)
    assert (detections.boxes[:, [0, 2]] <= WIDTH + 1e-3).all() and (
        detections.boxes[:, [1, 3]] <= HEIGHT + 1e-3
    ).all()


def test_a_missing_local_detector_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot load the local detector"):
        LocalDetector(str(tmp_path / "missing.onnx"))


def test_fallback_starts_when_the_link_goes_down_and_stops_when_it_returns(
    exported_head: dict[str, str], local_model: str, camera: Camera, ros_env: dict[str, str], tmp_path: Path
) -> None:
    relay = LinkRelay(camera.node.context)
    camera.executor.add_node(relay)
    fallback = {
        "model_file_path": local_model,
        "fallback_after_ms": FALLBACK_AFTER_MS,
        "max_rate": 1.0,
        "score_threshold": 0.0,
        "summary_period": 0.5,
    }
    specs = (
        ("tail", "tail_node", "tail.yaml", tail_params(exported_head), ("-r", "detections:=edge/detections")),
        ("head", "head_node", "head.yaml", head_params(exported_head, max_rate=2.0),
         ("-r", "bottleneck:=uplink/bottleneck")),
        ("fallback", "fallback_node", "head.yaml", fallback, ()),
    )  # fmt: skip
    with ExitStack() as stack:
        for name, executable, params_file, params, ros_args in specs:
            stack.enter_context(
                node_process(executable, params_file, params, ros_env, tmp_path / f"{name}.log", ros_args)
            )
        camera.spin_until(
            lambda: camera.image_pub.get_subscription_count() >= 2, "head and fallback to subscribe"
        )
        camera.wait_for_head_and_tail()
        camera.sending = True

        def counter(name: str) -> int:
            return camera.counter("/fallback", name)

        # The link is up: detections from the edge (the fallback may have covered the start-up).
        camera.spin_until(lambda: counter("edge_frames") >= 2 and counter("local") == 0, "edge detections")
        starts, stops, local = counter("fallback_starts"), counter("fallback_stops"), counter("local_frames")

        relay.up = False
        camera.spin_until(lambda: counter("fallback_starts") > starts, "the fallback to start")
        camera.spin_until(lambda: counter("local_frames") >= local + 2, "local detections")
        edge = counter("edge_frames")

        relay.up = True
        camera.spin_until(lambda: counter("fallback_stops") > stops, "the fallback to stop")
        camera.spin_until(lambda: counter("edge_frames") >= edge + 2, "edge detections again")
        assert counter("local") == 0 and counter("failed_frames") == 0
    stamps = Counter((d.header.stamp.sec, d.header.stamp.nanosec) for d in camera.detections)
    assert stamps and max(stamps.values()) == 1, "a frame got two detection messages"
    assert set(stamps) <= {(s[0], s[1]) for s in camera.sent}
    print(f"\n{len(stamps)} frames detected; relay {relay.forwarded} forwarded, {relay.dropped} dropped")
    print(
        "\n".join(line for line in (tmp_path / "fallback.log").read_text().splitlines() if "fallback" in line)
    )
