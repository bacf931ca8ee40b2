"""Robot side of the split detector: the head (camera frames -> bottleneck) and the overlay for RViz.

ros2 launch sc2_split head.launch.py image_topic:=/camera/image_raw head_params_file:=/path/head.yaml
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare
from sc2_split.ros.dds_profile import camera_profile_env


def generate_launch_description() -> LaunchDescription:
    namespace = LaunchConfiguration("namespace")
    image_topic = LaunchConfiguration("image_topic")
    params_file = LaunchConfiguration("head_params_file")
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
                description="parameters of the head and overlay nodes (model paths, backend, codec)",
            ),
            DeclareLaunchArgument(
                "overlay", default_value="true", description="also draw detections for RViz"
            ),
            Node(
                package="sc2_split",
                executable="head_node",
                name="head",
                namespace=namespace,
                parameters=[params_file],
                remappings=camera_remaps,
                output="screen",
            ),
            Node(
                package="sc2_split",
                executable="overlay_node",
                name="overlay",
                namespace=namespace,
                parameters=[params_file],
                remappings=camera_remaps,
                output="screen",
                condition=IfCondition(LaunchConfiguration("overlay")),
            ),
        ]
    )
