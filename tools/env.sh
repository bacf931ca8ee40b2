# Source this (bash) to use the built workspace: the venv where tools/setup.sh made one, then the overlay.
# `source tools/env.sh jazzy` uses the Jazzy leg's (.venv-jazzy, install-jazzy/) instead.
# shellcheck shell=bash
_sc2_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_sc2_suffix=${1:+-$1}
if [[ -z ${ROS_DISTRO:-} && -f $_sc2_root/.venv$_sc2_suffix/bin/activate ]]; then
    # shellcheck disable=SC1090
    source "$_sc2_root/.venv$_sc2_suffix/bin/activate"
    export AMENT_PREFIX_PATH=$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
    export CMAKE_PREFIX_PATH=$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
    export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
fi
if [[ ! -f $_sc2_root/install$_sc2_suffix/setup.bash ]]; then
    echo "env.sh: the workspace is not built; run tools/setup.sh ${1:-} first" >&2
    return 1
fi
# shellcheck disable=SC1090
source "$_sc2_root/install$_sc2_suffix/setup.bash"
export COLCON_DEFAULTS_FILE=$_sc2_root/.colcon-defaults.yaml
# Raw camera frames between processes need a larger shared-memory segment than Fast DDS's default:
# the shipped profile, unless the user set one (README, "Camera frames over DDS").
if [[ -z ${FASTDDS_DEFAULT_PROFILES_FILE:-}${FASTRTPS_DEFAULT_PROFILES_FILE:-} ]]; then
    _sc2_profile=$_sc2_root/install$_sc2_suffix/sc2_split/share/sc2_split/config/fastdds_camera_frames.xml
    if [[ $_sc2_suffix == -jazzy || ${ROS_DISTRO:-} == @(humble|jazzy) ]]; then
        export FASTRTPS_DEFAULT_PROFILES_FILE=$_sc2_profile # Fast DDS 2.x
    else
        export FASTDDS_DEFAULT_PROFILES_FILE=$_sc2_profile # Fast DDS 3.x warns about the old name
    fi
fi
unset _sc2_root _sc2_suffix _sc2_profile
