#!/usr/bin/env bash
# The fleet benchmark (python -m sc2_split.benchmarks.fleet) on a lent GPU machine within BUDGET_S
# (default 540 s): N in-process tails against one served tail for 1 to 72 robots, the demo model served
# by a standalone tritonserver (8 instances, a process each) and by tail_server (PyTriton, 2 instances
# in one process); then the ResNet-50 (random weights) in the time left, under tritonserver. MODELS
# (demo, resnet50, resnet50_fitted) picks; ROBOTS, SERVE and IN_PROCESS override the demo's robots, servers and in-process robots,
# RESNET_ROBOTS, RESNET_IN_PROCESS and RESNET_SERVE the ResNet-50's robots and servers; FLEET_SECONDS and
# FLEET_WARMUP each row's measured and warm-up seconds (default 2 and 1); FLEET_ARGS further arguments of
# the benchmark for every model (e.g. "--preferred-batch 8 16 32"). MPS="off on" runs every model
# twice, the second time with a CUDA MPS control daemon running (JSON fleet_NAME_mps.json), so that a
# server's instances, one process each, share the GPU side by side instead of by time slicing.
# JSON per model, a markdown table and the machine's facts under $OUT.
#
# From the root of a copy of this tree, on a machine with Python 3.12 and torch but no serving stack:
#   WHEELS=.device/whl-triton OUT=/tmp/out tools/gpu_fleet.sh
# WHEELS holds what tools/gpu_fleet_carry.sh builds (set up by tools/fleet_venv.py); without it the
# Python in use (PYTHON, default python3) must have it all.
#   TINY=1 OUT=/tmp/out tools/gpu_fleet.sh     a check on a CPU machine: 1 and 2 robots, 1 s each
set -uo pipefail
: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
budget=${BUDGET_S:-540} # seconds from the start, for all MODELS
py=${PYTHON:-python3}
tree=$(pwd)

if [[ -n ${WHEELS:-} ]]; then
    stage=${STAGE:-/tmp/sc2_fleet}
    rm -rf "$stage" && mkdir -p "$stage/site" "$stage/fallback" "$stage/stub"
    for pack in site fallback stub; do
        tar -xJf "$WHEELS/$pack-cp312.tar.xz" -C "$stage/$pack" || exit 1
    done
    "$py" -m venv --without-pip "$stage/venv" || exit 1
    "$py" tools/fleet_venv.py "$stage/venv" "$tree" "$stage/site" "$stage/fallback" "$stage/stub" || exit 1
    py=$stage/venv/bin/python
else
    export PYTHONPATH=$tree/sc2_split${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONDONTWRITEBYTECODE=1

# The machine, and where each package came from: a run that fails at import says why here.
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
    echo "cpu cores: $(nproc)"
    "$py" - <<'EOF'
import importlib, sys, sysconfig
print("python", sys.version.split()[0], "LIBDIR", sysconfig.get_config_var("LIBDIR"),
      "LDLIBRARY", sysconfig.get_config_var("LDLIBRARY"))
for name in ("numpy", "torch", "torchvision", "scipy", "pandas", "timm", "torch_geometric", "compressai",
             "sc2bench", "torchdistill", "constriction", "pytriton", "tritonclient", "grpc", "gevent",
             "ml_dtypes", "psutil", "yaml"):
    try:
        module = importlib.import_module(name)
        print(f"{name:16} {getattr(module, '__version__', '?'):14} {module.__file__}")
    except Exception as exc:
        print(f"{name:16} MISSING {exc!r}")
import torch
print("cuda", torch.cuda.is_available(), torch.version.cuda)
EOF
    stub=$("$py" -c "import pytriton, pathlib, sys; v = f'{sys.version_info[0]}.{sys.version_info[1]}'; print(pathlib.Path(pytriton.__file__).parent / 'tritonserver/python_backend_stubs' / v / 'triton_python_backend_stub')")
    libdir=$("$py" -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))")
    echo "stub: $stub"
    LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ldd "$stub" | grep -E "python|not found"
} >"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
"$py" -c "import sc2_split.tail, sc2_split.serving.server, sc2_split.benchmarks.fleet" || {
    echo "gpu_fleet: the tail or the server does not import here (see $OUT/machine.txt)"
    exit 1
}

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
machine=${MACHINE:-one ${gpu:-machine without GPU}, $(nproc) CPU cores}
if [[ -n ${TINY:-} ]]; then
    # A shared CPU answers slowly: a long request timeout, so that some frames are answered.
    robots=(1 2) in_process=(1 2) resnet_robots=() resnet_in_process=() seconds=1 warmup=0.5 workers=0
    serve=(--serve tritonserver:1 --serve tail_server:1) resnet_serve=() request_timeout=20
else
    # 72 robots offer 2,160 frames/s; 32 in-process ResNet-50 tails take long to start: served only.
    robots=(${ROBOTS-1 4 16 32 72}) in_process=(${IN_PROCESS-1 4 16 32})
    resnet_robots=(${RESNET_ROBOTS-1 4 16 32}) resnet_in_process=(${RESNET_IN_PROCESS-1 4 16})
    serve=(${SERVE:---serve tritonserver:8 --serve tail_server:2}) resnet_serve=(${RESNET_SERVE:---serve tritonserver:4})
    seconds=${FLEET_SECONDS:-2} warmup=${FLEET_WARMUP:-1} workers=0 request_timeout=1.5
fi

# One model's rows, stopped where the time left runs out (the JSON holds the rows done).
fleet() { # NAME TIMEOUT_S ARGS...
    local name=$1 limit=$2
    shift 2
    echo "== $name ($(date -u +%T), at most ${limit} s)"
    timeout -s INT -k 20 "$limit" "$py" -m sc2_split.benchmarks.fleet "$@" --warmup "$warmup" --seconds "$seconds" \
        --decode-workers "$workers" --timeout "$request_timeout" --machine "$machine" ${FLEET_ARGS:-} \
        --json "$OUT/fleet_$name.json" 2>&1 | grep --line-buffered -v -E "Warning|warnings.warn" | tee "$OUT/fleet_$name.log"
}
left() { echo $((budget - SECONDS)); }

# MODELS picks, in turn, each with an equal share of the time left: demo, resnet50 (random weights:
# about 880 KB a frame, the worst case) and resnet50_fitted (the same random network with its prior
# fit to its latents, benchmarks/fitted_prior.py: about 22 KB a frame, a trained student's rate).
# Entropy version 2, decoded on the GPU a batch at a time.
read -r -a models <<<"${MODELS:-demo resnet50}"
read -r -a mps_modes <<<"${MPS:-off}"
jobs=()
for mps in "${mps_modes[@]}"; do
    for model in "${models[@]}"; do jobs+=("$mps:$model"); done
done
share() { echo $(($(left) / (${#jobs[@]} - k) - 8)); } # of the time left, for jobs[k]

# CUDA MPS: its control daemon started here (and stopped on the way out), checked by a CUDA client.
export CUDA_MPS_PIPE_DIRECTORY=/tmp/sc2-mps CUDA_MPS_LOG_DIRECTORY=/tmp/sc2-mps-log
# (pgrep -x sees 15 characters of a name: the daemon is found by its command line.)
mps_running() { pgrep -f '(^|/)nvidia-cuda-mps-control( |$)' >/dev/null; }
mps_stop() { mps_running && echo quit | nvidia-cuda-mps-control; }
trap mps_stop EXIT
mps_start() {
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    nvidia-cuda-mps-control -d && "$py" -c "import torch; torch.zeros(1, device='cuda')" && return
    echo "gpu_fleet: CUDA MPS did not start (log: $(cat "$CUDA_MPS_LOG_DIRECTORY"/*.log 2>/dev/null | tail -3))"
    mps_stop
    return 1
}

for ((k = 0; k < ${#jobs[@]}; k++)); do
    mps=${jobs[k]%%:*} model=${jobs[k]#*:} suffix=
    if [[ $mps == on ]]; then
        suffix=_mps
        mps_running || mps_start || continue
    else
        mps_stop
    fi
    case $model in
    demo)
        fleet "demo$suffix" "$(share)" --model demo_fp:demo_fp_beta4.5_stage2 --robots "${robots[@]}" \
            --in-process-robots ${in_process[@]+"${in_process[@]}"} "${serve[@]}"
        ;;
    resnet50 | resnet50_fitted)
        ((${#resnet_robots[@]})) && (($(left) > 60)) || continue
        spec=sc2_resnet50_fp
        if [[ $model == resnet50_fitted ]]; then
            spec=sc2_resnet50_fp:/tmp/sc2_resnet50_fitted.pt
            [[ -f /tmp/sc2_resnet50_fitted.pt ]] ||
                "$py" -m sc2_split.benchmarks.fitted_prior sc2_resnet50_fp /tmp/sc2_resnet50_fitted.pt 2>&1 |
                grep -v -E "Warning|warnings.warn"
        fi
        fleet "$model$suffix" "$(share)" --model "$spec" --robots "${resnet_robots[@]}" \
            --in-process-robots ${resnet_in_process[@]+"${resnet_in_process[@]}"} "${resnet_serve[@]}"
        ;;
    *) echo "gpu_fleet: unknown model $model (demo, resnet50, resnet50_fitted)" ;;
    esac
done
"$py" -m sc2_split.benchmarks.fleet --table "$OUT"/fleet_*.json | tee "$OUT/fleet_table.md"
echo "gpu_fleet: done in $SECONDS s"
