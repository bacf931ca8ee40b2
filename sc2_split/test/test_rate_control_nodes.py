"""Rate control between real head and tail processes over an emulated uplink (a relay in this test's
process that throttles the head's bottlenecks): the head sends its most accurate rate on a wide link,
goes down when the link narrows and back up when it widens, and counts each switch on /diagnostics."""

from contextlib import ExitStack
from pathlib import Path

import yaml
from sc2_split.testing.link_relay import LinkRelay
from sc2_split.testing.node_process import node_process
from split_fixtures import Camera, head_params, tail_params

from sc2_split_msgs.msg import Bottleneck

# The tail runs a ResNet-50 on 2 shared cores (seconds a frame when they are busy): a budget its
# work fits under with room to spare. What sends the rate down here is the load: at the lossless
# rate the narrow link would need more bytes than it carries, so its predicted round trip is endless.
LATENCY_BUDGET_MS = 20000.0
FRAMES_PER_S = 2.0


def write_ladder(path: Path, exported_head: dict[str, str], valid: dict[str, Bottleneck]) -> None:
    """The exported head's fp16 and quant8 codecs as two rates. Their sizes are those of real
    bottlenecks; the accuracies only rank them (fp16 is the lossless one), they were not measured."""
    rungs = [("lossless", "fp16", 2.0), ("quantized", "quant8", 1.0)]
    document = {
        "operating_points": [
            {
                "name": name,
                "metadata_file_path": exported_head["metadata_file_path"],
                "codec": codec,
                "bytes_per_frame": len(valid[codec].data),
                "accuracy": accuracy,
            }
            for name, codec, accuracy in rungs
        ]
    }
    path.write_text(yaml.safe_dump(document))


def test_the_head_goes_down_when_the_link_narrows_and_back_up_when_it_widens(
    exported_head: dict[str, str],
    valid: dict[str, Bottleneck],
    camera: Camera,
    ros_env: dict[str, str],
    tmp_path: Path,
) -> None:
    ladder = tmp_path / "ladder.yaml"
    write_ladder(ladder, exported_head, valid)
    relay = LinkRelay(camera.node.context)
    camera.executor.add_node(relay)
    head = head_params(
        exported_head, ladder_file=str(ladder), latency_budget_ms=LATENCY_BUDGET_MS, max_rate=FRAMES_PER_S
    )
    with ExitStack() as stack:
        for name, executable, params_file, params, ros_args in (
            ("tail", "tail_node", "tail.yaml", tail_params(exported_head), ()),
            ("head", "head_node", "head.yaml", head, ("-r", "bottleneck:=uplink/bottleneck")),
        ):
            stack.enter_context(
                node_process(executable, params_file, params, ros_env, tmp_path / f"{name}.log", ros_args)
            )
        camera.wait_for_head_and_tail()
        camera.sending = True

        def point() -> int:
            return camera.counter("/head", "operating_point")

        # Wide: frames come back at the lossless rate, and it stays there.
        camera.spin_until(lambda: len(camera.stats) >= 3, "detections over the wide link")
        assert point() == 0 and {s.codec for s in camera.stats} == {"fp16"}

        # Narrow: the lossless rate would back the link up (its bytes at 2 Hz are more than it
        # carries), the quantized one loads it to half.
        relay.bytes_per_s = 3.5 * len(valid["quant8"].data)
        camera.spin_until(lambda: point() == 1, "the head to go down to quant8", timeout_s=180)
        # Frames sent before the switch may still be on the link.
        camera.spin_until(lambda: camera.stats[-1].codec == "quant8", "quant8 detections on the narrow link")
        assert point() == 1

        # Wide again: back up to the lossless rate.
        relay.bytes_per_s = 1e12
        camera.spin_until(lambda: point() == 0, "the head to go back up to fp16", timeout_s=180)
        assert camera.counter("/head", "rate_switches_down") >= 1
        assert camera.counter("/head", "rate_switches_up") >= 1
        assert {b.codec for b in camera.bottlenecks} >= {"fp16", "quant8"}
        assert relay.dropped < relay.forwarded
    switches = [line for line in (tmp_path / "head.log").read_text().splitlines() if "]: rate " in line]
    print(f"\nrelay: {relay.forwarded} forwarded, {relay.dropped} dropped; {len(camera.stats)} answered")
    print("\n".join(switches))
