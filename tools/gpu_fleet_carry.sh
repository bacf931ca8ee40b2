#!/usr/bin/env bash
# Builds what tools/gpu_fleet.sh carries to a GPU machine with Python 3.12 and torch but none of the
# serving stack: two folders of cp312 packages, packed with xz to fit a device call (its 64 MiB hold
# the working tree too).
#   site-cp312.tar.xz      first on the path: PyTriton (trimmed: Python 3.12's backend stub only, no
#                          bundled libpython 3.13), tritonclient and their dependencies, and the tail's
#                          model stack (sc2bench, compressai, torchdistill, constriction), and
#                          numpy 2.2 (the image's numba-cuda compiles no kernel with its numpy 2.5,
#                          which lacks np.row_stack: the GPU entropy decoder needs it)
#   fallback-cp312.tar.xz  last: used only where the machine has no package of that name (timm,
#                          torch_geometric, ml_dtypes, requests, ...); tools/fleet_venv.py picks them
#   stub-cp312.tar.xz      numpy 1.26, for Triton's Python backend stub only: the stub of Triton 2.51
#                          passes numpy 2 arrays on empty, while the machine's scipy wants its numpy 2
# Test folders go (numpy's _core/tests stays: numpy.testing imports it), and shared objects lose their
# symbol tables (strip --strip-unneeded), but numpy's OpenBLAS: patchelf'd by auditwheel, it fails to
# load once stripped ("ELF load command address/offset not page-aligned"). xz -9e: the fleet's call
# carries 46 MiB of these beside the tree.
# Usage: tools/gpu_fleet_carry.sh OUT_DIR   (needs a Python 3.12 with pip: PY312, default python3.12)
# OUT_DIR gets the two archives only (carry it whole); downloads stay in OUT_DIR.build.
set -euo pipefail
out=$(realpath -m "${1:?usage: tools/gpu_fleet_carry.sh OUT_DIR}")
work=$out.build
py=${PY312:-python3.12}
mkdir -p "$out" "$work/dl"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

site=(
    nvidia-pytriton==0.7.0 tritonclient==2.73.0 grpcio==1.85.3 protobuf==6.33.6 python-rapidjson==1.25
    pyzmq==27.3.0 sh==2.4.0 typing_inspect==0.9.0 mypy_extensions==1.2.0 wrapt==2.5.2
    gevent==26.9.0 geventhttpclient==2.6.1 greenlet==3.3.2 zope.event zope.interface brotli==1.2.1
    aiohttp==3.14.5 multidict==7.2.1 yarl==1.25.1 frozenlist==1.8.0 aiosignal==1.4.0 propcache==0.5.4
    attrs==26.1.0 aiohappyeyeballs==2.7.1
    numpy==2.2.6 constriction==0.5.0 sc2bench==0.1.1 compressai==1.2.8 torchdistill==1.1.5 pytorch_msssim==1.0.0
)
stub=(numpy==1.26.4)
fallback=(
    timm==1.0.31 torch_geometric==2.8.1 einops==0.8.2 ml_dtypes==0.5.4 requests==2.34.2
    charset-normalizer==3.5.3 idna==3.20 urllib3==2.8.0 certifi==2026.10.19.post1 tqdm==4.70.1
    xxhash==4.1.0 psutil==7.2.2 packaging==26.4 PyYAML==6.0.4 safetensors==0.8.0
)
download() {
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_35_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$work/dl" "$@"
}
download "${site[@]}" "${fallback[@]}"
download "${stub[@]}" # apart: pip resolves one numpy per call

pytriton=$(ls "$work"/dl/nvidia_pytriton-0.7.0-*.whl)
mkdir -p "$work/trimmed"
"$py" "$here/trim_pytriton_wheel.py" "$pytriton" "$work/trimmed/$(basename "$pytriton")"

wheels_of() { # the downloaded wheel of each requirement (of its version, where it names one: two
    # numpy versions lie there), the trimmed PyTriton for PyTriton's
    local spec name version
    for spec in "$@"; do
        name=${spec%%==*}
        name=${name//[-.]/_}
        version=
        [[ $spec == *==* ]] && version=${spec#*==}-
        if [[ ${name,,} == nvidia_pytriton ]]; then
            echo "$work/trimmed/$(basename "$pytriton")"
        else
            ls "$work"/dl/* | grep -i -F "/${name}-${version}" | head -1
        fi
    done
}
pack() { # NAME REQUIREMENTS...: installed into a folder, then packed
    local name=$1
    shift
    rm -rf "${work:?}/$name"
    mapfile -t files < <(wheels_of "$@")
    "$py" -m pip install -q --no-index --no-deps --no-compile --target "$work/$name" "${files[@]}"
    # numpy.testing, which scipy imports, needs numpy/_core/tests/_natype.py.
    find "$work/$name" -depth -type d \( -name tests -not -path "*/numpy/_core/tests" -o -name __pycache__ \) \
        -exec rm -rf {} +
    find "$work/$name" -type f \( -name "*.so" -o -name "*.so.*" -o -path "*/tritonserver/bin/*" \
        -o -name triton_python_backend_stub \) -not -path "*/numpy.libs/*" -exec strip --strip-unneeded {} +
    if [[ -d $work/$name/pytriton ]]; then
        # PyTriton takes an install outside site-packages for an editable one and looks for its
        # libraries there.
        ln -s ../../nvidia_pytriton.libs "$work/$name/pytriton/tritonserver/external_libs"
        # ICU's 30 MB of locale and converter data, loaded only through libxml2 (cloud storage
        # listings, which a local model repository never reads): an empty table of the same name.
        icudata=$(ls "$work/$name"/nvidia_pytriton.libs/libicudata-*.so.*)
        echo 'const char icudt70_dat[16] = {0};' | gcc -shared -fPIC -x c - -o "$icudata" \
            -Wl,-soname,"$(basename "$icudata")"
    fi
    tar -C "$work/$name" -cf - . | xz -9e -T2 >"$out/$name-cp312.tar.xz"
    rm -rf "${work:?}/$name"
}
pack site "${site[@]}"
pack fallback "${fallback[@]}"
pack stub "${stub[@]}"
ls -la "$out"/*.tar.xz
du -cb "$out"/*.tar.xz | tail -1
