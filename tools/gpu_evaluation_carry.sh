#!/usr/bin/env bash
# Builds what tools/gpu_evaluation.sh carries to a GPU machine with Python 3.12, torch, torchvision,
# numpy 2 and scipy but nothing else of the evaluation: folders of cp312 packages, shared objects
# stripped (strip --strip-unneeded), test folders gone, packed with xz to fit a device call (its
# 64 MiB hold the working tree too).
#   eval-cp312.tar.xz   PyAV (x264, x265 and FFmpeg inside), Pillow (without AVIF, FreeType and LCMS),
#                       pycocotools, the tail's model stack (sc2bench, compressai, torchdistill, timm,
#                       constriction, pytorch_msssim), PyYAML, tqdm; and standin/skimage: the 16
#                       photos and textures that sc2_split.data.synthetic takes from scikit-image, as
#                       its files, read with Pillow (equal to skimage.data's arrays, checked here), for
#                       a machine without scikit-image (used only there)
#   plot-cp312.tar.xz   matplotlib and its dependencies (fontTools pure Python, packaging), fonts
#                       but DejaVu Sans and the last-resort one gone; optional: without it the run
#                       writes no .png (--no-plot), and `python -m sc2_split.evaluation --merge
#                       RESULT.json` draws it anywhere
# Usage: tools/gpu_evaluation_carry.sh OUT_DIR   (PY312: a Python 3.12 with pip, default pyenv's 3.12.1;
# PYTHON: one with scikit-image, default .venv/bin/python). OUT_DIR gets the two archives only.
set -euo pipefail
out=$(realpath -m "${1:?usage: tools/gpu_evaluation_carry.sh OUT_DIR}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py312=${PY312:-$HOME/.pyenv/versions/3.12.1/bin/python}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tree=$(dirname "$here")
py=${PYTHON:-$tree/.venv/bin/python}
mkdir -p "$out" "$work/dl"

eval_packages=(
    av==16.0.1 pillow==13.0.0 pycocotools==2.0.11 sc2bench==0.1.1 compressai==1.2.8 torchdistill==1.1.5
    timm==1.0.31 constriction==0.5.0 pytorch_msssim==1.0.0 PyYAML==6.0.4 tqdm==4.70.1
)
plot_packages=(
    matplotlib==3.11.2 contourpy==1.3.3 cycler==0.12.1 kiwisolver==1.5.1 pyparsing==3.3.3
    python-dateutil==4.0.0 six==1.17.0 packaging==26.4
)
download() {
    "$py312" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_35_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$work/dl" "$@"
}
download "${eval_packages[@]}" "${plot_packages[@]}"
# fontTools' compiled modules are optional speed-ups (23 MB); matplotlib imports it for fonts only.
"$py312" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation py \
    --abi none --platform any -d "$work/dl" fonttools==4.68.0

wheels_of() { # the downloaded wheel of each requirement
    local spec name
    for spec in "$@"; do
        name=${spec%%==*}
        name=${name//[-.]/_}
        ls "$work"/dl/* | grep -i "/${name}-" | head -1
    done
}
install() { # FOLDER REQUIREMENTS...: installed, trimmed and stripped
    local folder=$1
    shift
    rm -rf "$folder"
    mapfile -t files < <(wheels_of "$@")
    "$py312" -m pip install -q --no-index --no-deps --no-compile --target "$folder" "${files[@]}"
    find "$folder" -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} +
    find "$folder" -type f \( -name "*.so" -o -name "*.so.*" \) -exec strip --strip-unneeded {} +
}
check_libraries() { # FOLDER: every shared object finds its libraries (a trimmed one still needed fails)
    local missing libs # a wheel's bundled libraries find each other as its extension modules load them
    libs=$(find "$1" -maxdepth 1 -type d -name "*.libs" | paste -sd:)
    missing=$(find "$1" -type f \( -name "*.so" -o -name "*.so.*" \) -exec env LD_LIBRARY_PATH="$libs" ldd {} + 2>&1 |
        grep "not found" || true)
    [[ -z $missing ]] || { echo "gpu_evaluation_carry: unresolved libraries in $1: $missing"; exit 1; }
}

stage=$work/eval
rm -rf "$stage" && mkdir -p "$stage"
install "$stage/site" "${eval_packages[@]}"
# Pillow's AVIF, FreeType and colour-management modules and the libraries only they load (10 MB):
# its plugins import them on use, and the evaluation reads and writes JPEG, WebP and PNG only.
rm -f "$stage"/site/PIL/_{avif,imagingft,imagingcms,imagingtk}.cpython-*.so
rm -f "$stage"/site/pillow.libs/lib{avif,freetype,harfbuzz,brotlicommon,brotlidec,lcms2}-*
check_libraries "$stage/site"
# The stand-in: skimage.data's functions for the images synthetic.py names, each reading its file.
PYTHONPATH=$tree/sc2_split "$py" - "$stage/standin/skimage" <<'EOF'
import inspect
import re
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data
from skimage.data import _fetchers

from sc2_split.data.synthetic import _GRAY_TEXTURES, _PHOTOS

out = Path(sys.argv[1])
(out / "data").mkdir(parents=True)
files = {}
for name in _PHOTOS + _GRAY_TEXTURES:
    (file,) = re.findall(r'_load\("data/([^"]+)"', inspect.getsource(getattr(_fetchers, name)))
    shutil.copy(Path(data.__file__).parent / file, out / "data" / file)
    if not np.array_equal(np.asarray(Image.open(out / "data" / file)), getattr(data, name)()):
        sys.exit(f"skimage.data.{name}() is not its file {file} as Pillow reads it")
    files[name] = file
(out / "__init__.py").write_text('"""Stand-in of tools/gpu_evaluation_carry.sh: skimage.data\'s images only."""\n')
(out / "data" / "__init__.py").write_text(f'''"""Stand-in of tools/gpu_evaluation_carry.sh for a machine without scikit-image: the images that
sc2_split.data.synthetic takes from skimage.data, read from the same files with Pillow."""

from pathlib import Path

import numpy as np
from PIL import Image

FILES = {files!r}


def __getattr__(name):
    if name not in FILES:
        raise AttributeError(name)
    return lambda: np.asarray(Image.open(Path(__file__).with_name(FILES[name])))
''')
print(f"stand-in skimage.data: {len(files)} images")
EOF
tar -C "$stage" -cf - site standin | xz -9e -T2 >"$out/eval-cp312.tar.xz"

install "$stage/plot" "${plot_packages[@]}" fonttools==4.68.0
find "$stage/plot/matplotlib/mpl-data/fonts" -type f ! -name "DejaVuSans*.ttf" ! -name "LastResort*.ttf" -delete
rm -rf "$stage/plot/matplotlib/mpl-data/sample_data"
check_libraries "$stage/plot"
tar -C "$stage" -cf - plot | xz -6 -T2 >"$out/plot-cp312.tar.xz"
rm -rf "$stage"
ls -la "$out"/*.tar.xz
du -cb "$out"/*.tar.xz | tail -1
