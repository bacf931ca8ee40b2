"""bag_tool: record, play and decode split-detector bags where rosbag2 is not installed.

Its bags are rosbag2 bags (a directory holding an MCAP file and metadata.yaml): `ros2 bag info` and
`ros2 bag play` read them (with the rosbag2 MCAP storage plugin, ros-<distro>-rosbag2-storage-mcap), and
`bag_tool play` and `bag_tool tail` read those of `ros2 bag record -s mcap`. Where rosbag2 is installed,
`ros2 bag record -s mcap /bottleneck /detections` records the same.

  # record until Ctrl-C (or --duration S, --count N) into the new bag directory run1
  ros2 run sc2_split bag_tool record -o run1 /bottleneck /detections
  # publish the bottlenecks again, spaced as recorded (--rate 0.5: half speed), into a running tail node
  ros2 run sc2_split bag_tool play run1 --topics /bottleneck --rate 0.5
  # the tail offline: detections as JSON lines, and as vision_msgs/Detection2DArray into a new bag
  ros2 run sc2_split bag_tool tail run1 --model-config sc2_resnet50_fp --checkpoint student.pt \\
      --jsonl run1_detections.jsonl --output-bag run1_detections

Without the ros2 CLI, run install/sc2_split/lib/sc2_split/bag_tool. record and play take ROS arguments
after --ros-args (e.g. `-r __ns:=/robot1`, `-p use_sim_time:=true`).
"""

import argparse
import contextlib
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.expand_topic_name import expand_topic_name
from rclpy.utilities import remove_ros_args

from sc2_split.ros.bag import BagError, BagWriter, Recorder, play, read_messages
from sc2_split.ros.topics import RESULTS_QOS
from sc2_split.untrusted import shown

PROG = "bag_tool"
# The tail node's parameters that the offline tail takes as options, with the node's defaults.
TAIL_OPTIONS = ("model_config", "checkpoint", "model_name", "device", "score_threshold", "max_detections")
DETECTIONS_TYPE = "vision_msgs/msg/Detection2DArray"
BOTTLENECK_TYPE = "sc2_split_msgs/msg/Bottleneck"


def record_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} record", description="Records topics into a new bag until Ctrl-C, --duration or --count"
    )
    parser.add_argument("topics", nargs="+", help="topics to record, e.g. /bottleneck /detections")
    parser.add_argument(
        "-o", "--output", type=Path, help="bag directory to create (default: rosbag2_<date>-<time>)"
    )
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: never)")
    parser.add_argument(
        "--count", type=int, default=0, help="stop after this many messages of all topics (0: never)"
    )
    args = parser.parse_args(remove_ros_args([PROG, *argv])[1:])
    output = args.output or Path(time.strftime("rosbag2_%Y_%m_%d-%H_%M_%S"))
    with BagWriter(output) as writer:
        rclpy.init(args=[PROG, *argv])
        recorder = Recorder(writer, args.topics, args.count)
        executor = SingleThreadedExecutor()
        executor.add_node(recorder)
        deadline = time.monotonic() + args.duration if args.duration > 0 else math.inf
        try:
            while rclpy.ok() and not recorder.finished and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            recorder.destroy_node()
            rclpy.try_shutdown()
    print(f"recorded {recorder.recorded} messages into {output}")
    return 0


def play_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} play", description="Publishes a bag's messages again, spaced as they were recorded."
    )
    parser.add_argument("bag", type=Path, help="bag directory (or one .mcap file)")
    parser.add_argument("--topics", nargs="+", help="play only these topics (default: all)")
    parser.add_argument("--rate", type=float, default=1.0, help="speed factor (0.5: half speed)")
    parser.add_argument(
        "--wait-for-subscribers",
        type=float,
        default=10.0,
        metavar="S",
        help="wait at most this long for a subscriber on every topic before playing",
    )
    args = parser.parse_args(remove_ros_args([PROG, *argv])[1:])
    rclpy.init(args=[PROG, *argv])
    node = rclpy.create_node("bag_player")
    # Names as the bag stores them; a relative name is taken from the root namespace.
    topics = args.topics and {expand_topic_name(t, node.get_name(), "/") for t in args.topics}
    try:
        count = play(node, args.bag, topics, args.rate, args.wait_for_subscribers)
        print(f"played {count} messages from {args.bag}")
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def tail_command(argv: list[str]) -> int:
    # torch and the model come with the tail; record and play must run on a robot without them.
    from rclpy.serialization import serialize_message

    from sc2_split.codecs.payload import PayloadError
    from sc2_split.ros.bottleneck_conversion import from_bottleneck
    from sc2_split.ros.detections_conversion import best_detections, to_detection_array
    from sc2_split.ros.tail_node import PARAMETERS
    from sc2_split.tail import TailPipeline
    from sc2_split_msgs.msg import Bottleneck

    parser = argparse.ArgumentParser(
        prog=f"{PROG} tail",
        description="Runs a bag's bottlenecks through the tail, as the tail node would have, offline.",
    )
    parser.add_argument("bag", type=Path, help="bag directory (or one .mcap file)")
    parser.add_argument("--topic", default="/bottleneck", help="bottleneck topic (default: %(default)s)")
    for name in TAIL_OPTIONS:
        p = PARAMETERS[name]
        option = "--" + name.replace("_", "-")
        parser.add_argument(option, type=type(p.default), default=p.default, help=p.description)
    parser.add_argument("--jsonl", type=Path, help="JSON lines of detections (default: standard output)")
    parser.add_argument(
        "--output-bag", type=Path, help="new bag for the detections, as vision_msgs/Detection2DArray"
    )
    args = parser.parse_args(argv)

    pipeline = TailPipeline.from_config(args.model_config, args.checkpoint, args.model_name, args.device)
    detections_topic = args.topic.rsplit("/", 1)[0] + "/detections"  # the tail node's, beside its input
    decoded, rejected, first_rejection = 0, Counter(), {}
    with contextlib.ExitStack() as stack:
        lines = stack.enter_context(args.jsonl.open("w")) if args.jsonl else sys.stdout
        out = stack.enter_context(BagWriter(args.output_bag)) if args.output_bag else None
        if out is not None:
            connection = out.add_topic(detections_topic, DETECTIONS_TYPE, [RESULTS_QOS])
        for message in read_messages(args.bag, [args.topic]):
            try:
                if message.type_name != BOTTLENECK_TYPE:
                    raise PayloadError("corrupt", f"{args.topic} holds {shown(message.type_name)} messages")
                msg = _deserialized(message.data, Bottleneck)
                detections = pipeline(from_bottleneck(msg))
            except PayloadError as exc:
                rejected[exc.reason] += 1
                first_rejection.setdefault(exc.reason, str(exc))
                continue
            decoded += 1
            keep = best_detections(detections, args.score_threshold, args.max_detections)
            stamp = {"sec": msg.header.stamp.sec, "nanosec": msg.header.stamp.nanosec}
            record = {
                "stamp": stamp,
                "frame_id": msg.header.frame_id,
                "boxes": detections.boxes[keep].tolist(),  # x1 y1 x2 y2 in source pixels
                "scores": detections.scores[keep].tolist(),
                "labels": detections.labels[keep].tolist(),
            }
            lines.write(json.dumps(record) + "\n")
            if out is not None:
                array = to_detection_array(msg.header, detections, args.score_threshold, args.max_detections)
                out.write(connection, serialize_message(array), message.log_time)
    print(f"{decoded} bottlenecks of {args.topic} decoded by {pipeline.model_id}", file=sys.stderr)
    for reason, count in sorted(rejected.items()):
        print(f"rejected {count} ({reason}), e.g.: {first_rejection[reason]}", file=sys.stderr)
    return 0


COMMANDS = {"record": record_command, "play": play_command, "tail": tail_command}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=COMMANDS, help="then its own options (bag_tool COMMAND -h)")
    command = parser.parse_args(argv[:1]).command
    try:
        return COMMANDS[command](argv[1:])
    except (BagError, OSError) as exc:
        print(f"{PROG} {command}: {exc}", file=sys.stderr)
        return 1


def _deserialized(data: bytes, message_type: type) -> object:
    """A recorded message; PayloadError("corrupt") if its bytes are not one."""
    from rclpy.serialization import deserialize_message

    from sc2_split.codecs.payload import PayloadError

    try:
        return deserialize_message(data, message_type)
    except Exception as exc:  # rclpy raises whatever the type support's C code reports
        raise PayloadError("corrupt", f"a recorded message is no {message_type.__name__}: {exc!r}") from exc


if __name__ == "__main__":
    sys.exit(main())
