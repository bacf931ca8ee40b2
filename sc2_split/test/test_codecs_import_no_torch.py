"""The codecs run on the robot's head, which has no torch: importing and using them, entropy coding
on worker processes included, must not load it."""

import os
import subprocess
import sys
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys

import numpy as np

from sc2_split.codecs import CODECS, EncodedTensor, EntropyTables, make_codec
from sc2_split.codecs.channel_pool import ChannelPool

tables = EntropyTables.from_dict({
    "quantized_cdf": [[0, 1000, 9000, 57000, 65000, 65536, 0], [0, 30000, 65000, 65535, 65536, 0, 0]],
    "cdf_length": [6, 5],
    "offset": [-2, -1],
    "medians": [0.25, -1.5],
    "precision": 16,
})
x = np.random.default_rng(0).normal(size=(1, 2, 6, 8)).astype(np.float32)
x[0, 0, 0, 0] = 50.0
for name in CODECS:
    codec = make_codec(name, tables)
    wire = codec.encode(x).to_bytes()
    y = codec.decode(EncodedTensor.from_bytes(wire), x.shape)
    assert y.shape == x.shape and np.abs(y - x).max() <= 0.5, name
with ChannelPool(tables, 2) as pool:
    pooled = make_codec("entropy", tables, pool)
    assert pooled.encode(x) == make_codec("entropy", tables).encode(x)
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "compressai"))
assert not loaded, loaded
print("ok")
"""


def test_codecs_work_without_importing_torch(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
