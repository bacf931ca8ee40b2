"""Edge side of the split detector: the tail (bottleneck -> detections, label_info, stats).

ros2 launch sc2_split tail.launch.py tail_params_file:=/path/tail.yaml
With the robot's fallback node (fallback.launch.py), the tail's detections go to edge/detections:
ros2 launch sc2_split tail.launch.py detections_topic:=edge/detections
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare
from sc2_split.ros.dds_profile import camera_profile_env


def generate_launch_description() -> LaunchDescription:
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
                "tail_params_file",
                default_value=PathJoinSubstitution([FindPackageShare("sc2_split"), "config", "tail.yaml"]),
                description="parameters of the tail node (model config, checkpoint, device, threshold)",
            ),
            DeclareLaunchArgument(
                "detections_topic",
                default_value="detections",
                description="where the tail publishes detections: edge/detections under a fallback node",
            ),
            Node(
                package="sc2_split",
                executable="tail_node",
                name="tail",
                namespace=LaunchConfiguration("namespace"),
                parameters=[LaunchConfiguration("tail_params_file")],
                remappings=[("detections", LaunchConfiguration("detections_topic"))],
                output="screen",
            ),
        ]
    )
