"""The link-trace benchmark's pieces, each quick: the trace script, the figures it reports (gaps,
budget share, mAP over every frame sent), detections read back from the messages the nodes publish,
a video stream decoded packet by packet as the offloading edge node does, and the relay as its own
process, throttling and dropping as its stdin tells it. The benchmark itself runs for minutes:
`python -m sc2_split.benchmarks.link_trace` (docs/rate_control.md)."""

import itertools
import json
import subprocess
import sys
import time

import numpy as np
import pytest
from sc2_split.benchmarks.link_trace import Phase, parse_trace, phase_at
from sc2_split.benchmarks.trace_metrics import FrameRecord, longest_gap_s, summarize
from sc2_split.data.sequences import sequence
from sc2_split.frames import Detections
from sc2_split.offload.video import VideoDecoder, VideoSettings, encode_stream
from sc2_split.ros.detections_conversion import from_detection_array, to_detection_array
from sc2_split.ros.topics import BOTTLENECK_QOS
from split_fixtures import running_camera
from std_msgs.msg import Header

from sc2_split_msgs.msg import Bottleneck


def test_the_trace_script_reads_rates_and_outages_in_order() -> None:
    phases = parse_trace("50:10,10:10,2:10,down:10,20:10")
    assert [p.label for p in phases] == ["50 Mbit/s", "10 Mbit/s", "2 Mbit/s", "down", "20 Mbit/s"]
    assert phase_at(phases, 0.0) == Phase(50, 10) and phase_at(phases, 29.9) == Phase(2, 10)
    assert phase_at(phases, 30.0).mbit == 0 and phase_at(phases, 99.0) == Phase(20, 10)
    for bad in ("fast:10", "10:0", "-1:5"):
        with pytest.raises(ValueError):
            parse_trace(bad)


def test_the_longest_gap_counts_the_trace_s_start_and_end() -> None:
    assert longest_gap_s([1.0, 2.0, 2.5], 0.0, 10.0) == 7.5
    assert longest_gap_s([3.0, 4.0], 0.0, 5.0) == 3.0
    assert longest_gap_s([], 0.0, 5.0) == 5.0
    assert longest_gap_s([-1.0, 6.0], 0.0, 5.0) == 5.0  # answers outside the trace fill no gap


def test_the_figures_count_every_frame_sent() -> None:
    frames = sequence("test", 0, 4)
    targets = {int(t["image_id"]): t for _, t in frames}
    records = []
    for i, (_, target) in enumerate(frames):
        record = FrameRecord(int(target["image_id"]), sent_s=float(i))
        if i < 3:  # answered with its true boxes, the last after the budget; the fourth never
            record.answered_s = i + (0.1, 0.2, 0.9)[i]
            record.source = "local" if i == 2 else "edge"
            record.boxes = np.asarray(target["boxes"], dtype=np.float32)
            record.labels = np.asarray(target["labels"], dtype=np.int64)
            record.scores = np.ones(len(record.labels), np.float32)
        records.append(record)
    s = summarize(records, end_s=4.0, budget_ms=500.0, targets=targets)
    assert (s["sent"], s["answered"], s["detections_per_s"]) == (4, 3, 0.75)
    assert s["within_budget"] == 0.5 and s["p50_ms"] == pytest.approx(200.0)
    assert s["longest_gap_s"] == pytest.approx(2.9 - 1.2) and s["local_share"] == pytest.approx(1 / 3)
    # Three frames found whole, the fourth's objects all missed.
    assert 0.5 < s["map"] < 1.0
    assert summarize(records[:3], 3.0, 500.0, targets)["map"] == pytest.approx(1.0)


def test_detections_read_back_are_those_published() -> None:
    detections = Detections(
        boxes=np.array([[10, 20, 110, 80], [0, 0, 5, 5]], np.float32),
        scores=np.array([0.9, 0.2], np.float32),
        labels=np.array([3, 1], np.int64),
        decode_ms=0.0,
        tail_ms=0.0,
    )
    boxes, scores, labels = from_detection_array(to_detection_array(Header(), detections, 0.5, 10))
    np.testing.assert_allclose(boxes, detections.boxes[:1])
    assert scores.tolist() == pytest.approx([0.9]) and labels.tolist() == [3]


def test_a_stream_decoded_packet_by_packet_shows_each_frame_at_its_own_packet() -> None:
    frames = [image[:120, :160].copy() for image, _ in sequence("test", 1, 6)]
    packets = encode_stream(frames, VideoSettings("h264", 200_000, gop=3, fps=2))
    decoder = VideoDecoder("h264")
    for packet in packets:
        pictures = decoder.decode(packet.data, packet.frame)
        assert [index for index, _ in pictures] == [packet.frame]
        assert pictures[0][1].shape == frames[0].shape


def test_the_relay_process_throttles_and_drops_as_its_stdin_says(
    ros_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = subprocess.Popen(
        [sys.executable, "-m", "sc2_split.testing.link_relay", "--max-queue", "1.0"],
        env=ros_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with running_camera(ros_env, monkeypatch) as camera:
            uplink = camera.node.create_publisher(Bottleneck, "uplink/bottleneck", BOTTLENECK_QOS)
            arrivals: list[float] = []
            camera.node.create_subscription(
                Bottleneck, "bottleneck", lambda _: arrivals.append(time.monotonic()), BOTTLENECK_QOS
            )
            camera.spin_until(
                lambda: uplink.get_subscription_count() >= 1 and camera.node.count_publishers("/bottleneck"),
                "the relay to match",
            )
            relay.stdin.write("rate 2000\n")  # 1,000-byte messages: one every 0.5 s
            relay.stdin.flush()
            camera.spin_for(0.5)
            for _ in range(4):  # the fourth would wait 1.35 s, past the 1 s queue: dropped
                uplink.publish(Bottleneck(data=bytes(1000)))
                camera.spin_for(0.05)
            camera.spin_until(lambda: len(arrivals) >= 3, "three messages through the relay")
            camera.spin_for(1.0)
            assert len(arrivals) == 3
            assert min(b - a for a, b in itertools.pairwise(arrivals)) > 0.35
            relay.stdin.write("down\n")
            relay.stdin.flush()
            camera.spin_for(0.2)
            uplink.publish(Bottleneck(data=bytes(10)))
            camera.spin_for(1.0)
            assert len(arrivals) == 3
        out, _ = relay.communicate(timeout=30)
    finally:
        relay.kill()
    assert json.loads(out.splitlines()[-1]) == {"forwarded": 3, "dropped": 2}
