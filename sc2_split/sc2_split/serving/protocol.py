"""The served tail's tensors: a coded frame in, detections out, one request per frame.

Every input is a BYTES element of shape [1], so that requests of any robot, any payload size and any
frame size have equal shapes and Triton's dynamic batcher can put them in one batch. The header is the
JSON of the Bottleneck message's fields that the tail needs; the server trusts none of it.

An error is per request (`error` output, "reason: message"), never the batch's: one robot's malformed
payload fails only its own frame. Detections are padded to the batch's largest count, and to one row
where no frame of the batch found anything: PyTriton cannot pass an array with an empty dimension, and
failed the whole batch as `internal` (an empty scene, or a malformed payload alone in its batch).
`num_detections` says how many of each frame's rows are real (the TensorRT NMS plugins' vocabulary).
"""

import json
import re
from dataclasses import asdict

import numpy as np

from sc2_split.codecs.payload import DEFAULT_MAX_BYTES, MAX_NDIM, REASONS, EncodedTensor, PayloadError
from sc2_split.frames import CodedFrame, Detections
from sc2_split.geometry import ImageGeometry

HEADER, PAYLOAD = "header", "payload"
NUM_DETECTIONS, BOXES, SCORES, LABELS = "num_detections", "boxes", "scores", "labels"
ERROR, DECODE_MS, TAIL_MS = "error", "decode_ms", "tail_ms"
# (name, element type, shape of one request without the batch dimension); -1: any length.
INPUT_TENSORS = ((HEADER, np.bytes_, (1,)), (PAYLOAD, np.bytes_, (1,)))
OUTPUT_TENSORS = (
    (NUM_DETECTIONS, np.int32, (1,)),
    (BOXES, np.float32, (-1, 4)),
    (SCORES, np.float32, (-1,)),
    (LABELS, np.int64, (-1,)),
    (ERROR, np.bytes_, (1,)),
    (DECODE_MS, np.float32, (1,)),
    (TAIL_MS, np.float32, (1,)),
)
# Not a payload's fault: the server failed on a frame it had accepted.
FAILED = "failed"
MAX_HEADER_BYTES = 64 * 1024

_ENCODED_FIELDS = {"codec": str, "version": int, "dtype": str, "scale": float, "zero_point": int}
_GEOMETRY_FIELDS = tuple(ImageGeometry.__dataclass_fields__)


def triton_model_name(model_id: str) -> str:
    """The served model's name for a model id (`name@digest`): Triton names take letters, digits,
    '.', '_' and '-'. The server still checks the full id of every frame."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", model_id.replace("@", "."))


def request_inputs(frame: CodedFrame) -> dict[str, np.ndarray]:
    """The request's tensors of one frame, each of shape (1, 1): a batch of one."""
    enc = frame.encoded
    header = {
        "model_id": frame.model_id,
        **{name: getattr(enc, name) for name in _ENCODED_FIELDS},
        "shape": list(enc.shape),
        "chunk_sizes": list(enc.chunk_sizes),
        "geometry": asdict(frame.geometry),
    }
    return {
        HEADER: np.array([[json.dumps(header).encode()]], dtype=object),
        PAYLOAD: np.array([[bytes(enc.data)]], dtype=object),
    }


def frame_from_request(header: bytes, payload: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> CodedFrame:
    """The coded frame of one request; PayloadError("corrupt" or "oversized") if it is not one."""
    if len(header) > MAX_HEADER_BYTES or len(payload) > max_bytes:
        raise PayloadError("oversized", f"header of {len(header)} or payload of {len(payload)} bytes")
    try:
        fields = json.loads(header)
        fields = fields if isinstance(fields, dict) else {}
        geometry = fields.get("geometry")
        geometry = geometry if isinstance(geometry, dict) else {}
        encoded = {name: _typed(fields, name, kind) for name, kind in _ENCODED_FIELDS.items()}
        shape, chunks = _int_list(fields, "shape"), _int_list(fields, "chunk_sizes")
        sizes = {name: _typed(geometry, name, int) for name in _GEOMETRY_FIELDS}
        model_id = _typed(fields, "model_id", str)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError("corrupt", f"request header is not the served tail's: {exc}") from None
    if len(shape) > MAX_NDIM:
        raise PayloadError("shape", f"payload declares {len(shape)} dimensions, at most {MAX_NDIM} allowed")
    tensor = EncodedTensor(**encoded, shape=tuple(shape), data=payload, chunk_sizes=tuple(chunks))
    return CodedFrame(tensor, ImageGeometry(**sizes), model_id)


def error_text(exc: Exception) -> bytes:
    """The `error` output of a frame that failed: its payload's reason, else "failed"."""
    reason = exc.reason if isinstance(exc, PayloadError) else FAILED
    return f"{reason}: {exc}".encode()


def batch_outputs(results: list[Detections | Exception]) -> dict[str, np.ndarray]:
    """The output tensors of a batch, one row per request in order."""
    found = [r for r in results if isinstance(r, Detections)]
    width = max((len(r.scores) for r in found), default=0) or 1  # never an empty dimension
    n = len(results)
    out = {
        NUM_DETECTIONS: np.zeros((n, 1), np.int32),
        BOXES: np.zeros((n, width, 4), np.float32),
        SCORES: np.zeros((n, width), np.float32),
        LABELS: np.zeros((n, width), np.int64),
        ERROR: np.full((n, 1), b"", dtype=object),
        DECODE_MS: np.zeros((n, 1), np.float32),
        TAIL_MS: np.zeros((n, 1), np.float32),
    }
    for i, r in enumerate(results):
        if not isinstance(r, Detections):
            out[ERROR][i, 0] = error_text(r)
            continue
        k = len(r.scores)
        out[NUM_DETECTIONS][i, 0] = k
        out[BOXES][i, :k], out[SCORES][i, :k], out[LABELS][i, :k] = r.boxes, r.scores, r.labels
        out[DECODE_MS][i, 0], out[TAIL_MS][i, 0] = r.decode_ms, r.tail_ms
    return out


class ServedError(Exception):
    """A frame the server answered with an error that is not its payload's fault."""


def detections_from_outputs(outputs: dict[str, np.ndarray]) -> Detections:
    """One request's detections; PayloadError for a payload the server rejected, ServedError when the
    server failed on it."""
    error = bytes(outputs[ERROR].reshape(-1)[0]).decode(errors="replace")
    if error:
        reason, _, message = error.partition(": ")
        if reason in REASONS:
            raise PayloadError(reason, message)  # type: ignore[arg-type]
        raise ServedError(message)
    k = int(outputs[NUM_DETECTIONS].reshape(-1)[0])
    return Detections(
        boxes=outputs[BOXES].reshape(-1, 4)[:k].astype(np.float32),
        scores=outputs[SCORES].reshape(-1)[:k].astype(np.float32),
        labels=outputs[LABELS].reshape(-1)[:k].astype(np.int64),
        decode_ms=float(outputs[DECODE_MS].reshape(-1)[0]),
        tail_ms=float(outputs[TAIL_MS].reshape(-1)[0]),
    )


def _typed(fields: dict, name: str, kind: type) -> object:
    value = fields.get(name)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name} must be a {kind.__name__}, got {value!r}")
    return value


def _int_list(fields: dict, name: str) -> list[int]:
    value = fields.get(name)
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{name} must be a list of integers, got {value!r}")
    return value
