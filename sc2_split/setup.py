from glob import glob

from setuptools import find_packages, setup

package_name = "sc2_split"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    # Model configs, the bundled demo model (checkpoints and its exported head) and sample frames.
    package_data={
        package_name: [
            "models/configs/*.yaml",
            "models/demo/*.pt",
            "models/demo/head/*",
            "models/demo/heads/*/*",
            "data/samples/*",
        ]
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.launch.py")),
        (
            f"share/{package_name}/config",
            glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml"),
        ),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="sc2_split developers",
    maintainer_email="sc2-split@example.com",
    description="Split-computing object detection (SC2) for ROS 2: head on the robot, tail on the edge.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "head_node = sc2_split.ros.head_node:main",
            "tail_node = sc2_split.ros.tail_node:main",
            "tail_server = sc2_split.serving.server:main",
            "overlay_node = sc2_split.ros.overlay_node:main",
            "fallback_node = sc2_split.ros.fallback_node:main",
            "bag_tool = sc2_split.ros.bag_tool:main",
        ],
    },
)
