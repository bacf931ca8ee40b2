#!/usr/bin/env bash
# Issues 17 and 15 on one GPU, within TOTAL_S seconds (default 390) from the repository root:
#  1. The baseline: the training code before the DDP engine (BASELINE, a git archive of commit
#     6398a58^) through `python -m`, on the three students today's beta 4.5 was trained beside
#     (betas 4.5 and 6, demo_bq8), for BASE_S seconds: steps and steady steps/s.
#  2. The demo recipe's stage 1 with this tree through `torchrun --nproc-per-node 1`: three students
#     again, demo_fp_beta4.5, demo_bq8 and the seed's BQ client demo_bq1, side by side for what is
#     left of the time (at most MAIN_MAX_S), then each evaluated on 128 val frames as the bundled
#     students were (mAP through the real bottleneck, bytes per frame).
# Writes under $OUT: summary.json (figures, machine, today's bundled figures beside them),
# train.log, metrics.json, students_curves.png, baseline.log and the three checkpoints.
#
#   WHEELS=.device/whl-train BASELINE=.device/train-baseline/training_6398a58p.tar.gz tools/gpu_training.sh
#   TINY=1 OUT=/tmp/out tools/gpu_training.sh   # CPU smoke run of the same steps, about 3 minutes
set -euo pipefail
: "${OUT:?set OUT to the folder for the results}"
WHEELS=${WHEELS:-.device/whl-train}
BASELINE=${BASELINE:-.device/train-baseline/training_6398a58p.tar.gz}
TOTAL_S=${TOTAL_S:-390}
BASE_S=${BASE_S:-40}
MAIN_MAX_S=${MAIN_MAX_S:-240}
RESERVE_S=${RESERVE_S:-100} # the main run's start-up, evaluation and saving
work=${WORK:-/tmp/gpu_training}
root=$PWD
start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }

rm -rf "$work" && mkdir -p "$work" "$OUT"
if [[ -d $WHEELS ]] && compgen -G "$WHEELS/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" "$WHEELS"/*.whl
    export PYTHONPATH=$work/site${PYTHONPATH:+:$PYTHONPATH}
fi
new_path=$root/sc2_split${PYTHONPATH:+:$PYTHONPATH}
teacher=$root/sc2_split/sc2_split/models/demo/demo_teacher.pt
export PYTHONUNBUFFERED=1

if [[ ${TINY:-0} == 1 ]]; then
    TOTAL_S=${TINY_TOTAL_S:-170} BASE_S=12 MAIN_MAX_S=25 RESERVE_S=40
    old_args=(--batch-size 2 --workers 1)
    new_args=(--cpu --batch-size 2 --workers 1 --epoch-frames 8)
    val=2
else
    old_args=()
    new_args=()
    val=128
fi
machine=$(
    PYTHONPATH=$new_path python3 - <<'EOF'
import os, platform, torch
gpu = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU"
print(f"{gpu}, torch {torch.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPU cores, {platform.node()}")
EOF
)
echo "machine: $machine"
torchrun=(python3 -m torch.distributed.run --standalone --nproc-per-node 1)

# 1. The code before the engine (python -m) on today's three students (betas 4.5 and 6 and demo_bq8,
# as the bundled beta 4.5 was trained) for BASE_S seconds; a failure is reported and left out.
baseline=()
if [[ -f $BASELINE ]]; then
    tar -xzf "$BASELINE" -C "$work"
    t=$(date +%s)
    if PYTHONPATH=$work/old/sc2_split${PYTHONPATH:+:$PYTHONPATH} python3 -m sc2_split.training students \
        "${old_args[@]}" --teacher "$teacher" --out "$work/baseline" --betas 4.5 6 \
        --student-seconds "$BASE_S" --val-frames 4 >"$work/baseline.log" 2>&1; then
        baseline=(--baseline "$work/baseline/train.log" $(($(date +%s) - t)))
        cp "$work/baseline/train.log" "$OUT/baseline.log"
    else
        echo "the baseline run failed:" >&2
        tail -20 "$work/baseline.log" >&2
    fi
    echo "baseline done at $(elapsed) s"
fi

# 2. The demo recipe's stage 1 with the BQ client, for the time that is left.
main_s=$((TOTAL_S - $(elapsed) - RESERVE_S))
main_s=$((main_s > MAIN_MAX_S ? MAIN_MAX_S : main_s))
if ((main_s < 10)); then
    echo "no time left for the main run ($main_s s)" >&2
    exit 1
fi
main_cmd="torchrun --standalone --nproc-per-node 1 -m sc2_split.training students --teacher models/demo/demo_teacher.pt --betas 4.5 --quantized-configs demo_bq8 demo_bq1 --student-seconds $main_s --val-frames $val"
echo "main run: $main_cmd"
t=$(date +%s)
PYTHONPATH=$new_path "${torchrun[@]}" -m sc2_split.training students --teacher "$teacher" \
    --out "$work/main" --betas 4.5 --quantized-configs demo_bq8 demo_bq1 --student-seconds "$main_s" \
    --val-frames "$val" "${new_args[@]}" >"$work/main.log" 2>&1 || { tail -30 "$work/main.log"; exit 1; }
main_wall=$(($(date +%s) - t))
for f in train.log metrics.json students_curves.png demo_fp_beta4.5.pt demo_bq8.pt demo_bq1.pt; do
    cp "$work/main/$f" "$OUT/"
done
PYTHONPATH=$new_path python3 "$root/tools/gpu_training_summary.py" --machine "$machine" \
    --main-log "$work/main/train.log" --main-metrics "$work/main/metrics.json" \
    --main-command "$main_cmd" --main-wall "$main_wall" "${baseline[@]}" \
    --baseline-command "python -m sc2_split.training students --teacher models/demo/demo_teacher.pt --betas 4.5 6 --student-seconds $BASE_S --val-frames 4 (commit 6398a58^)" \
    --out "$OUT/summary.json"
echo "done in $(elapsed) s"
