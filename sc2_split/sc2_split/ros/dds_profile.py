"""The shipped Fast DDS profile for raw camera frames (config/fastdds_camera_frames.xml), and the
environment variable that sets it, which depends on the Fast DDS version of the distribution.

Fast DDS 2.x (Humble, Jazzy) reads FASTRTPS_DEFAULT_PROFILES_FILE only; 3.x (Kilted and newer) reads
FASTDDS_DEFAULT_PROFILES_FILE and, through rmw_fastrtps, the old name too, with a deprecation warning:
a file named by both is loaded twice there, and every transport in it is logged as a duplicate.
"""

from collections.abc import Mapping
from pathlib import Path

from ament_index_python.packages import get_package_share_directory

PROFILE_FILE = "fastdds_camera_frames.xml"
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
FAST_DDS_2_DISTROS = ("humble", "jazzy")


def profile_variable(ros_distro: str) -> str:
    """The variable the distribution's Fast DDS reads; "" (the registry's Kilted wheels): Fast DDS 3."""
    return PROFILE_VARIABLES[0] if ros_distro in FAST_DDS_2_DISTROS else PROFILE_VARIABLES[1]


def shipped_profile() -> Path:
    return Path(get_package_share_directory("sc2_split")) / "config" / PROFILE_FILE


def camera_profile_env(environ: Mapping[str, str], ros_distro: str | None = None) -> dict[str, str]:
    """What to add to `environ` for the shipped profile: nothing where the user set a profile.
    `ros_distro`: by default `environ`'s ROS_DISTRO, which a sourced distribution sets."""
    if any(environ.get(name) for name in PROFILE_VARIABLES):
        return {}
    distro = environ.get("ROS_DISTRO", "") if ros_distro is None else ros_distro
    return {profile_variable(distro): str(shipped_profile())}
