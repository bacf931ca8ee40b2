"""A tail serving other weights than the head's (same config, another checkpoint) refuses every
bottleneck as a model mismatch, counts each one, publishes no detections, and its log names both
model ids, so that whoever deployed them sees which side to update."""

from pathlib import Path

import torch
from sc2_split.head_metadata import HeadMetadata
from sc2_split.models.build import build_detector, model_id, save_checkpoint
from sc2_split.models.config import load_model_config
from sc2_split.testing.node_process import node_process
from split_fixtures import Camera, head_params, tail_params

# Frames sent one at a time once the tail has refused a first one: each must be refused in turn.
REFUSED = 8


def test_tail_refuses_every_bottleneck_of_another_model(
    exported_head: dict[str, str], camera: Camera, ros_env: dict[str, str], tmp_path: Path
) -> None:
    config = Path(exported_head["model_config"])
    torch.manual_seed(1)  # the head's checkpoint was made with seed 0
    other = build_detector(load_model_config(config))
    checkpoint = tmp_path / "other.pt"
    save_checkpoint(other, checkpoint)
    head_id = HeadMetadata.load(exported_head["metadata_file_path"]).model_id
    tail_id = model_id(config.stem, other)
    assert head_id != tail_id

    log = tmp_path / "tail.log"
    with (
        node_process(
            "tail_node", "tail.yaml", tail_params(exported_head, checkpoint=checkpoint), ros_env, log
        ),
        node_process("head_node", "head.yaml", head_params(exported_head), ros_env, tmp_path / "head.log"),
    ):
        camera.wait_for_head_and_tail()
        # Until the first refusal: the head's first bottlenecks may go before it has matched the tail.
        while camera.counter("/tail", "rejected_model") == 0:
            camera.publish_frame()
            camera.spin_for(1.0)
        for _ in range(REFUSED):
            encoded, refused = (
                camera.counter("/head", "encoded_frames"),
                camera.counter("/tail", "rejected"),
            )
            camera.publish_frame()
            camera.spin_until(
                lambda e=encoded, r=refused: (
                    camera.counter("/head", "encoded_frames") == e + 1
                    and camera.counter("/tail", "rejected_model") == r + 1
                ),
                "one more frame encoded and refused",
            )
    tail, head = camera.diagnostics.counters["/tail"], camera.diagnostics.counters["/head"]
    print(f"\nhead counters: {head}\ntail counters: {tail}")
    assert not camera.detections and not camera.stats
    assert tail["frames"] == tail["failed"] == tail["missed_frames"] == 0
    assert tail["rejected"] == tail["rejected_model"] > REFUSED
    (line, *_) = [line for line in log.read_text().splitlines() if "rejected a bottleneck (model" in line]
    print(line)
    assert head_id in line and tail_id in line
