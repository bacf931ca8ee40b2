# Source this (bash) to use the built workspace: the venv where tools/setup.sh made one, then the overlay.
# shellcheck shell=bash
_sc2_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z ${ROS_DISTRO:-} && -f $_sc2_root/.venv/bin/activate ]]; then
    # shellcheck disable=SC1091
    source "$_sc2_root/.venv/bin/activate"
    export AMENT_PREFIX_PATH=$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
    export CMAKE_PREFIX_PATH=$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
    export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
fi
if [[ ! -f $_sc2_root/install/setup.bash ]]; then
    echo "env.sh: the workspace is not built; run tools/setup.sh first" >&2
    return 1
fi
# shellcheck disable=SC1091
source "$_sc2_root/install/setup.bash"
export COLCON_DEFAULTS_FILE=$_sc2_root/.colcon-defaults.yaml
unset _sc2_root
