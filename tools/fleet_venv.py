"""The environment tools/gpu_fleet.sh runs the fleet benchmark in, on a machine with torch but none of
the serving stack: a venv (made by the caller, `python -m venv --without-pip VENV`) that sees, through
one .pth file, the carried packages first, then this tree's sc2_split, then this Python's own site
folders, then the carried fallbacks it lacks; and, in Triton's Python backend stub only, numpy 1.26
before all (the stub of Triton 2.51 passes numpy 2 arrays on empty; the machine's scipy needs its
numpy 2 everywhere else), with stand-ins of scipy and pandas: a standalone tritonserver's stub runs
the tail itself, and the machine's scipy, built for numpy 2, would not import there.

A venv and not PYTHONPATH: Triton's Python backend stub ignores PYTHONPATH and finds packages only in
the environment it runs in, and PyTriton's proxy needs numpy, zmq and pytriton there.

    python tools/fleet_venv.py VENV TREE SITE FALLBACK STUB_SITE
"""

import sys
import sysconfig
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path, PurePath

SITE_FOLDERS = ("site-packages", "dist-packages")
STUB = "triton_python_backend_stub"
# compressai imports these at import time, for parts the tail never runs (Gaussian conditionals,
# point-cloud datasets): importable stand-ins where this Python has none.
STANDINS = {"scipy": ("__init__", "stats"), "pandas": ("__init__",)}
STANDIN = '''"""Stand-in of tools/fleet_venv.py for a package this machine lacks: importable, not usable."""

__version__ = "1.0"  # numba, where it can import scipy, wants 1.0 or later


def __getattr__(name):
    if name.startswith("__"):  # hasattr and getattr with a default (a version check) see no attribute
        raise AttributeError(name)
    raise ImportError(f"{__name__}.{name}: not installed here (tools/fleet_venv.py stand-in)")
'''


def write_standin(folder: Path, package: str) -> None:
    (folder / package).mkdir()
    for module in STANDINS[package]:
        (folder / package / f"{module}.py").write_text(STANDIN)


def link_missing(fallback: Path, missing: Path) -> None:
    """Each fallback distribution that this Python has none of, linked into `missing`."""
    for info in sorted(fallback.glob("*.dist-info")):
        dist = metadata.PathDistribution(info)
        try:
            metadata.distribution(dist.metadata["Name"])
            continue
        except metadata.PackageNotFoundError:
            pass
        for top in {PurePath(f).parts[0] for f in dist.files or ()} - {"..", "bin"}:
            if not (missing / top).exists():
                (missing / top).symlink_to(fallback / top)
        print(f"fallback: {dist.metadata['Name']} {dist.version}")
    for package in STANDINS:
        if find_spec(package) is None and not (missing / package).exists():
            write_standin(missing, package)
            print(f"stand-in: {package}")


def main(venv: Path, tree: Path, site: Path, fallback: Path, stub_site: Path) -> None:
    missing, stub_standins = venv / "missing", venv / "stub-standins"
    missing.mkdir(exist_ok=True)
    link_missing(fallback, missing)
    if not stub_standins.exists():
        stub_standins.mkdir()
        for package in STANDINS:
            write_standin(stub_standins, package)
    own = [p for p in sys.path if p.rstrip("/").endswith(SITE_FOLDERS) and Path(p).is_dir()]
    in_stub = f"os.path.basename(os.path.realpath('/proc/self/exe')) == {STUB!r}"
    lines = [
        f"import os, sys; {in_stub} and sys.path.__setitem__(slice(0, 0), "
        f"[{str(stub_site)!r}, {str(stub_standins)!r}])",
        str(site),
        str(tree / "sc2_split"),
        *(f"import site; site.addsitedir({p!r})" for p in own),
    ]
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    (purelib / "sc2_split_fleet.pth").write_text("\n".join([*lines, str(missing)]) + "\n")


if __name__ == "__main__":
    main(*(Path(a).resolve() for a in sys.argv[1:6]))
