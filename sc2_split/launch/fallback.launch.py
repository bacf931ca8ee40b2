"""Robot side, when the edge may be gone: the fallback node, the one publisher of `detections` (the
edge's while it answers, the local detector's after fallback_after_ms of silence).

The tail's detections must come on edge/detections: on the edge,
ros2 launch sc2_split tail.launch.py detections_topic:=edge/detections
ros2 launch sc2_split fallback.launch.py image_topic:=/camera/image_raw head_params_file:=/path/head.yaml
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare
from sc2_split.ros.dds_profile import camera_profile_env


def generate_launch_description() -> LaunchDescription:
    image_topic = LaunchConfiguration("image_topic")
    # image_transport's compressed topic lives under the raw one, and a remap names a topic exactly.
    camera_remaps = [("image", image_topic), ("image/compressed", [image_topic, "/compressed"])]
    return LaunchDescription(
        [
            # Raw camera frames need a larger shared-memory segment than Fast DDS's default (README,
            # "Camera frames over DDS"): the shipped profile, unless the user set one.
            *(
                SetEnvironmentVariable(variable, value)
                for variable, value in camera_profile_env(os.environ).items()
            ),
            DeclareLaunchArgument(
                "namespace", default_value="", description="namespace of the split detector"
            ),
            DeclareLaunchArgument(
                "image_topic", default_value="image", description="camera image topic (raw)"
            ),
            DeclareLaunchArgument(
                "head_params_file",
                default_value=PathJoinSubstitution([FindPackageShare("sc2_split"), "config", "head.yaml"]),
                description="parameters of the fallback node (local detector's ONNX file, fallback_after_ms)",
            ),
            Node(
                package="sc2_split",
                executable="fallback_node",
                name="fallback",
                namespace=LaunchConfiguration("namespace"),
                parameters=[LaunchConfiguration("head_params_file")],
                remappings=camera_remaps,
                output="screen",
            ),
        ]
    )
