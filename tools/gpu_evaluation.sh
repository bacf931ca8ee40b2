#!/usr/bin/env bash
# The rate-accuracy grid of docs/video_baselines.md (python -m sc2_split.evaluation: the teacher on raw
# frames, JPEG at 6 qualities, WebP at 5, H.264 and H.265 at 0.25-4 Mbit/s with a 1 s GOP and intra only,
# the 8 demo students, 1% and 5% of messages lost in 3 draws each, latency) on a lent GPU machine, from
# the root of a copy of this tree, in about 7 minutes: SEQUENCES x LENGTH held-out frames (default
# 6 x 60), split by method into parts that run side by side (one process each: the CPU codecs and
# pycocotools on the cores, torch on the GPU), each stopped when the time is up, then the latency alone
# (a quiet CPU), then one merged table. A part stopped early loses only its own rows; the log says which.
#
#   WHEELS=.device/whl-eval OUT=/tmp/out tools/gpu_evaluation.sh                # the GPU machine
#   PYTHON=.venv/bin/python OUT=/tmp/out tools/gpu_evaluation.sh --tiny         # here, on the CPU: a check
#                                     # of the script (1 sequence of 4 frames, a point per method family)
#
# WHEELS holds what tools/gpu_evaluation_carry.sh builds: eval-cp312.tar.xz, and plot-cp312.tar.xz
# (optional: without matplotlib no .png is drawn; `python -m sc2_split.evaluation --merge
# OUT/rate_accuracy_sequences.json --out docs` draws it anywhere). BUDGET_S (default 450): seconds from
# the start after which parts are stopped; PARALLEL: parts at once (default: the CPU cores).
# Writes under OUT: machine.txt, evaluation.log, parts/NAME.json and .log, and the merged
# rate_accuracy_sequences.md, .json (and .png).
set -uo pipefail
: "${OUT:?set OUT to the folder for the results}"
tiny=${1:-}
budget=${BUDGET_S:-450}
py=${PYTHON:-python3}
mkdir -p "$OUT/parts"

main() {
    if [[ -n ${WHEELS:-} ]]; then
        local stage=${STAGE:-/tmp/sc2_eval}
        rm -rf "$stage" && mkdir -p "$stage"
        tar -xJf "$WHEELS/eval-cp312.tar.xz" -C "$stage" || return 1
        if [[ -f $WHEELS/plot-cp312.tar.xz ]]; then
            tar -xJf "$WHEELS/plot-cp312.tar.xz" -C "$stage" || return 1
        fi
        export PYTHONPATH=$stage/site:$stage/plot${PYTHONPATH:+:$PYTHONPATH}
        # scikit-image serves only skimage.data's images: the carried stand-in where none imports.
        "$py" -c "import skimage.data" 2>/dev/null || PYTHONPATH=$PYTHONPATH:$stage/standin
    fi
    export PYTHONPATH=$PWD/sc2_split${PYTHONPATH:+:$PYTHONPATH}
    export PYTHONDONTWRITEBYTECODE=1 NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-/tmp/numba-cache}

    # The machine, and where each package came from: a run that fails at import says why here.
    {
        date -u
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
        echo "cpu cores: $(nproc)"
        "$py" - <<'EOF'
import importlib
import sys

print("python", sys.version.split()[0])
for name in ("numpy", "torch", "torchvision", "scipy", "av", "PIL", "pycocotools", "compressai", "sc2bench",
             "torchdistill", "timm", "constriction", "numba", "yaml", "tqdm", "matplotlib", "skimage"):
    try:
        module = importlib.import_module(name)
        print(f"{name:14} {getattr(module, '__version__', '?'):16} {module.__file__}")
    except Exception as exc:
        print(f"{name:14} MISSING {exc!r}")
import av
import torch

print("encoders:", [c for c in ("libx264", "libx265") if c in av.codecs_available])
print("cuda", torch.cuda.is_available(), torch.version.cuda)
EOF
    } >"$OUT/machine.txt" 2>&1
    cat "$OUT/machine.txt"
    "$py" -c "import sc2_split.evaluation.__main__" || {
        echo "gpu_evaluation: the evaluation does not import here (see $OUT/machine.txt)"
        return 1
    }
    local plot=()
    "$py" -c "import matplotlib.pyplot" 2>/dev/null || plot=(--no-plot)

    local grid workers latency_frames parallel jpeg webp bitrates students
    if [[ $tiny == --tiny ]]; then
        grid=(--sequences 1 --length 4 --loss-draws 1 --device cpu)
        workers=1 latency_frames=4 parallel=${PARALLEL:-3}
        jpeg=(50) webp=(50) bitrates=(1000000) students=(demo_bq1 demo_fp_beta4.5_stage2)
    else
        grid=(--sequences "${SEQUENCES:-6}" --length "${LENGTH:-60}" --loss-draws 3 --device cuda)
        workers=2 latency_frames=30 parallel=${PARALLEL:-$(nproc)}
        local lists
        mapfile -t lists < <("$py" -c "from sc2_split.evaluation import rate_accuracy as r
for points in (r.JPEG_QUALITIES, r.WEBP_QUALITIES, r.VIDEO_BITRATES, r.STUDENTS): print(*points)")
        read -r -a jpeg <<<"${lists[0]}"
        read -r -a webp <<<"${lists[1]}"
        read -r -a bitrates <<<"${lists[2]}"
        read -r -a students <<<"${lists[3]}"
    fi
    local gpu machine
    gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
    machine=${MACHINE:-${gpu:+one $gpu, }$(nproc) CPU cores}
    echo "grid: ${grid[*]}; parts at once: $parallel; time until parts stop: $budget s"

    # Each part: one process, no methods but its own (argparse keeps an option's last value).
    local none=(--jpeg --webp --video --students)
    local parts=()
    part() { # NAME ARGS...
        local name=$1
        shift
        while (($(jobs -rp | wc -l) >= parallel)); do wait -n; done
        local limit=$((budget - SECONDS))
        parts+=("$name")
        if ((limit < 30)); then
            echo "part $name: not started, ${limit} s left"
            return
        fi
        echo "part $name: started at $SECONDS s, at most $limit s"
        (
            OMP_NUM_THREADS=2 NUMBA_NUM_THREADS=2 timeout -k 10 "$limit" "$py" -m sc2_split.evaluation \
                "${grid[@]}" --workers "$workers" --latency-frames 0 --no-plot --out "$OUT/parts" --name "$name" \
                "${none[@]}" "$@" >"$OUT/parts/$name.log" 2>&1
            echo "part $name: rc $? at $SECONDS s"
        ) &
    }
    part jpeg --jpeg "${jpeg[@]}"
    part webp --webp "${webp[@]}"
    local gop bitrate
    for gop in 1 0; do
        part "h264_gop$gop" --video h264 --gops "$gop" --bitrates "${bitrates[@]}"
    done
    for gop in 1 0; do # x265 is the slow encoder: a part per point
        for bitrate in "${bitrates[@]}"; do
            part "h265_gop${gop}_$bitrate" --video h265 --gops "$gop" --bitrates "$bitrate"
        done
    done
    local half=$(((${#students[@]} + 1) / 2))
    part students_a --students "${students[@]:0:half}"
    ((${#students[@]} > half)) && part students_b --students "${students[@]:half}"
    wait

    # Latency on a quiet CPU: the robot's side, timed on this machine's cores.
    local left=$((budget + 70 - SECONDS))
    if ((left >= 30)); then
        parts+=(latency)
        echo "latency: started at $SECONDS s, at most $left s"
        timeout -k 10 "$left" "$py" -m sc2_split.evaluation "${grid[@]}" --workers "$(nproc)" \
            --latency-frames "$latency_frames" --no-plot --out "$OUT/parts" --name latency "${none[@]}" \
            >"$OUT/parts/latency.log" 2>&1
        echo "latency: rc $? at $SECONDS s"
    else
        echo "latency: not measured, ${left} s left"
    fi

    local done=() missing=() name
    for name in "${parts[@]}"; do
        if [[ -f $OUT/parts/$name.json ]]; then done+=("$OUT/parts/$name.json"); else missing+=("$name"); fi
    done
    if ((${#done[@]} == 0)); then
        echo "gpu_evaluation: no part finished (see $OUT/parts/*.log)"
        return 1
    fi
    local about
    about=$("$py" -c "import json, sys; print(json.load(open(sys.argv[1]))['about'])" "${done[0]}")
    about+=" Machine: $machine; split by method into ${#parts[@]} processes run side by side (the latency alone"
    about+=" after them), merged (tools/gpu_evaluation.sh)."
    ((${#missing[@]})) && about+=" Stopped before the end, so missing: ${missing[*]}."
    "$py" -m sc2_split.evaluation --merge "${done[@]}" --about "$about" --out "$OUT" "${plot[@]}" || return 1
    echo "gpu_evaluation: ${#done[@]} of ${#parts[@]} parts in $SECONDS s${missing:+; missing: ${missing[*]}}"
    ((${#missing[@]} == 0))
}

main 2>&1 | tee "$OUT/evaluation.log"
exit "${PIPESTATUS[0]}"
