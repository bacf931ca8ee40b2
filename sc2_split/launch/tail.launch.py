"""Edge side of the split detector: the tail (bottleneck -> detections, label_info, stats).

ros2 launch sc2_split tail.launch.py tail_params_file:=/path/tail.yaml
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "namespace", default_value="", description="namespace of the split detector"
            ),
            DeclareLaunchArgument(
                "tail_params_file",
                default_value=PathJoinSubstitution([FindPackageShare("sc2_split"), "config", "tail.yaml"]),
                description="parameters of the tail node (model config, checkpoint, device, threshold)",
            ),
            Node(
                package="sc2_split",
                executable="tail_node",
                name="tail",
                namespace=LaunchConfiguration("namespace"),
                parameters=[LaunchConfiguration("tail_params_file")],
                output="screen",
            ),
        ]
    )
