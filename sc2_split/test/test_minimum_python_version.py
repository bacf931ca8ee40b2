"""Robots run older Pythons than edge servers (JetPack 6 and Humble: Python 3.10): vermin finds the
oldest Python every module of the package, its launch files and setup.py can run on, and it must be
3.10 or older. The robot side's tests also run under Python 3.10 (`make test`, tools/setup.sh py310)."""

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
ROBOT_PYTHON = (3, 10)
# The console script beside this interpreter (vermin has no __main__).
VERMIN = str(Path(sys.executable).parent / "vermin")


def test_the_package_needs_python_3_10_at_most() -> None:
    sources = [PACKAGE / "sc2_split", PACKAGE / "launch", PACKAGE / "setup.py"]
    target = f"-t={ROBOT_PYTHON[0]}.{ROBOT_PYTHON[1]}-"
    run = subprocess.run(
        [VERMIN, "--no-tips", "--eval-annotations", target, *map(str, sources)],
        capture_output=True, text=True,
    )  # fmt: skip
    (minimum,) = re.findall(r"Minimum required versions: ([\d.]+)", run.stdout)
    print(f"\nvermin: the package needs Python {minimum} or newer")
    assert run.returncode == 0 and "not met" not in run.stdout, run.stdout + run.stderr
    assert tuple(int(part) for part in minimum.split(".")) <= ROBOT_PYTHON, run.stdout
