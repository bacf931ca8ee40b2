#!/usr/bin/env bash
# Entropy version 2 (rANS lanes) on a CUDA machine, from the root of a copy of this tree: the GPU tests
# of test_entropy_lanes.py (GPU and CPU decoders bit for bit, mixed batches, the fuzz generators) and
# test_tail_decode_batch.py (a served tail's batch decoded in one launch, frame by frame as alone), then
# `python -m sc2_split.benchmarks.entropy` (versions 1 and 2 side by side, and the ResNet-50 tail).
# About 3 minutes on an H200.
#
#   WHEELS=.device/whl-lanes OUT=/tmp/out tools/gpu_entropy.sh          # the GPU machine
#   WHEELS=.device/whl-lanes OUT=/tmp/out tools/gpu_entropy.sh --tiny   # here, on the CPU: a check of
#                                           # the script (numba's CUDA simulator, few frames, no tail)
#
# WHEELS holds cp312 wheels of what the GPU machine lacks (constriction, compressai, sc2bench, timm,
# torchdistill, pytorch_msssim, pycocotools, PyYAML; the machine's own pytest serves, a carried one
# clashes with its pytest-timeout), numpy 2.2.6 (numba-cuda cannot compile kernels with the image's
# numpy 2.5, which lacks np.row_stack), and entropy_payloads.npz (`python -m
# sc2_split.benchmarks.entropy --save-payloads`: the demo student's 120 test frames and 4 ResNet-50
# latents as version 1 payloads, as that machine has no scikit-image for the procedural frames).
# Writes under OUT: versions.txt, pytest.txt, entropy.json and entropy.txt (the tables).
set -uo pipefail

: "${WHEELS:?WHEELS must name the folder of wheels and entropy_payloads.npz}"
: "${OUT:?OUT must name the output folder}"
tiny=${1:-}
mkdir -p "$OUT"
wheels=$(cd "$WHEELS" && pwd)
if [[ $tiny != --tiny ]]; then
    site=/tmp/site
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheels"/*.whl
    export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/sc2_split${PYTHONPATH:+:$PYTHONPATH}
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-/tmp/numba-cache}
python3 -c 'import numba, numpy, torch; print("numba", numba.__version__, "numpy", numpy.__version__, "torch", torch.__version__, "CUDA", torch.cuda.is_available())' |
    tee "$OUT/versions.txt"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >>"$OUT/versions.txt" 2>/dev/null || true

bench=(--payloads "$wheels/entropy_payloads.npz" --repeats 30 --tail --json "$OUT/entropy.json")
tests=(sc2_split/test/test_entropy_lanes.py sc2_split/test/test_tail_decode_batch.py)
if [[ $tiny == --tiny ]]; then
    export NUMBA_ENABLE_CUDASIM=1
    bench=(--demo-frames 2 --resnet50-frames 0 --repeats 3 --json "$OUT/entropy.json")
    tests=(sc2_split/test/test_entropy_lanes.py -k gpu)
fi

python3 -m pytest -q -p no:cacheprovider -rs "${tests[@]}" >"$OUT/pytest.txt" 2>&1
tests_rc=$?
echo "pytest rc=$tests_rc" >>"$OUT/pytest.txt"
tail -3 "$OUT/pytest.txt"
# The benchmark without the simulator: it times the real decoders only.
env -u NUMBA_ENABLE_CUDASIM python3 -m sc2_split.benchmarks.entropy "${bench[@]}" 2>&1 | tee "$OUT/entropy.txt"
bench_rc=${PIPESTATUS[0]}
echo "tests rc=$tests_rc benchmark rc=$bench_rc" | tee -a "$OUT/entropy.txt"
exit $((tests_rc || bench_rc))
