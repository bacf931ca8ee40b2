"""Both halves on one machine (a demo, or a robot with its own GPU): head, overlay and tail.

Takes the arguments of head.launch.py and tail.launch.py (namespace, image_topic, head_params_file,
overlay, tail_params_file, detections_topic). View the result with
`rviz2 -d <share>/sc2_split/config/split.rviz`.
"""

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    launch_dir = PathJoinSubstitution([FindPackageShare("sc2_split"), "launch"])
    return LaunchDescription(
        [
            IncludeLaunchDescription(PythonLaunchDescriptionSource(PathJoinSubstitution([launch_dir, name])))
            for name in ("head.launch.py", "tail.launch.py")
        ]
    )
