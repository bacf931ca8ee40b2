"""GPU kernels tested on a CPU: each script in a process of its own under numba's CUDA simulator or
Triton's interpreter, which read their switch when the kernels' modules are imported. A script
prints "kernel ok" last."""

import os
import subprocess
import sys


def run_simulated(script: str) -> None:
    """`script` under numba's CUDA simulator."""
    _run(script, "NUMBA_ENABLE_CUDASIM")


def run_interpreted(script: str) -> None:
    """`script` under Triton's interpreter (numpy's arithmetic)."""
    _run(script, "TRITON_INTERPRET")


def _run(script: str, switch: str) -> None:
    env = {**os.environ, switch: "1"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "kernel ok" in run.stdout, run.stderr[-3000:]
