"""TensorRT cannot be installed here, so its backend and engine builder never run in these tests:
pyright checks them against NVIDIA's published stubs (tensorrt-stubs, installed by tools/setup.sh
beside the venv's packages, never as an importable `tensorrt`), so that a call TensorRT does not
have fails CI. The settings are the repository's pyrightconfig.json."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYRIGHT = REPO / ".venv" / "pyright" / "node_modules" / ".bin" / "pyright"
CONFIG = json.loads((REPO / "pyrightconfig.json").read_text())

# Calls of TensorRT 8 that TensorRT 10 removed: what the check is there to catch.
REMOVED_CALLS = """
import tensorrt as trt

builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
config = builder.create_builder_config()
config.max_workspace_size = 1 << 30
engine = builder.build_engine(builder.create_network(0), config)
"""


def pyright(*files: Path) -> dict:
    """pyright's JSON report with the repository's settings: on `files`, else on those it includes."""
    if not PYRIGHT.is_file():
        pytest.fail(f"{PYRIGHT} is missing: run tools/setup.sh")
    command = [str(PYRIGHT), "-p", str(REPO / "pyrightconfig.json"), "--pythonpath", sys.executable]
    out = subprocess.run([*command, "--outputjson", *map(str, files)], capture_output=True, text=True)
    return json.loads(out.stdout)


def errors(report: dict) -> list[str]:
    return [
        f"{Path(d['file']).name}:{d['range']['start']['line'] + 1}: {d['message']}"
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    ]


def test_tensorrt_backend_and_engine_builder_type_check_against_the_stubs() -> None:
    report = pyright()
    assert report["summary"]["filesAnalyzed"] == len(CONFIG["include"])
    assert errors(report) == []


def test_the_check_fails_on_calls_tensorrt_10_does_not_have(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text(REMOVED_CALLS)
    found = errors(pyright(wrong))
    print("\n".join(found))
    assert any("max_workspace_size" in e for e in found) and any("build_engine" in e for e in found)
