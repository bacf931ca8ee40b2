"""A copy of the nvidia-pytriton wheel small enough to carry to a GPU machine (tools/gpu_fleet_carry.sh):
the Python backend stub of one Python version only, and none of the bundled libpython (the stub
loads the machine's own). RECORD is written anew for the files kept.

    python tools/trim_pytriton_wheel.py SOURCE.whl DEST.whl [PYTHON_VERSION]   (default 3.12)
"""

import base64
import hashlib
import sys
import zipfile


def keep(name: str, version: str) -> bool:
    if "/python_backend_stubs/" in name and f"/python_backend_stubs/{version}/" not in name:
        return False
    return not name.startswith("nvidia_pytriton.libs/libpython3") and not name.endswith(".dist-info/RECORD")


def trim(source: str, dest: str, version: str) -> None:
    with (
        zipfile.ZipFile(source) as zin,
        zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout,
    ):
        record = next(n for n in zin.namelist() if n.endswith(".dist-info/RECORD"))
        rows = []
        for info in zin.infolist():
            if not keep(info.filename, version):
                continue
            data = zin.read(info)
            zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append(f"{info.filename},sha256={digest},{len(data)}")
        zout.writestr(record, "\n".join([*rows, f"{record},,"]) + "\n")


if __name__ == "__main__":
    trim(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "3.12")
