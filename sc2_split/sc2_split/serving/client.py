"""A tail node's side of the served tail: frames to a Triton server as asynchronous gRPC requests.

Holds no model and no torch. At most `max_in_flight` requests are out at once: a frame that finds
them all taken is dropped and counted (the server is slower than the robot), so nothing queues here.
A request the server cannot answer (down, restarting, overloaded past the timeout) ends as `RequestLostError`;
gRPC reconnects on its own, within about a second of the server being back.
"""

import threading
from collections.abc import Callable

import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from sc2_split.codecs.payload import PayloadError
from sc2_split.frames import CodedFrame, Detections
from sc2_split.serving.protocol import (
    INPUT_TENSORS,
    OUTPUT_TENSORS,
    ServedError,
    detections_from_outputs,
    request_inputs,
    triton_model_name,
)

# Reconnect soon after a restart: gRPC's own backoff grows to two minutes.
_CHANNEL_ARGS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]

Done = Callable[[Detections | Exception], None]


class RequestLostError(Exception):
    """A frame the server did not answer; `reason` is gRPC's status, e.g. "unavailable"."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ServedTail:
    """The tail at `url` (host:port of Triton's gRPC endpoint), `max_in_flight` requests at a time."""

    def __init__(self, url: str, max_in_flight: int = 4, timeout_s: float = 2.0) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be 1 or more, not {max_in_flight}")
        self.url = url
        self.timeout_s = timeout_s
        self._client = grpcclient.InferenceServerClient(url, channel_args=_CHANNEL_ARGS)
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._outputs = [grpcclient.InferRequestedOutput(name) for name, _, _ in OUTPUT_TENSORS]

    def submit(self, frame: CodedFrame, done: Done) -> bool:
        """Sends `frame`; `done` gets its Detections or the exception that ended it, on a gRPC
        thread. False, and `done` is never called, when all requests in flight are taken."""
        if not self._slots.acquire(blocking=False):
            return False
        arrays = request_inputs(frame)
        inputs = []
        for name, _, _ in INPUT_TENSORS:
            tensor = grpcclient.InferInput(name, list(arrays[name].shape), "BYTES")
            tensor.set_data_from_numpy(arrays[name])
            inputs.append(tensor)

        def finished(result: grpcclient.InferResult | None, error: InferenceServerException | None) -> None:
            self._slots.release()
            done(_outcome(frame, result, error))

        try:
            self._client.async_infer(
                triton_model_name(frame.model_id),
                inputs,
                finished,
                outputs=self._outputs,
                # The server drops a frame that waited this long in its queue: no work for nobody.
                timeout=int(self.timeout_s * 1e6),
                client_timeout=self.timeout_s,
            )
        except Exception as exc:
            self._slots.release()
            done(RequestLostError("unavailable", f"could not send to {self.url}: {exc}"))
        return True

    def close(self) -> None:
        self._client.close()


def _outcome(
    frame: CodedFrame, result: grpcclient.InferResult | None, error: InferenceServerException | None
) -> Detections | Exception:
    if error is None and result is not None:
        try:
            return detections_from_outputs({name: result.as_numpy(name) for name, _, _ in OUTPUT_TENSORS})
        except (PayloadError, ServedError) as exc:
            return exc
        except Exception as exc:  # an answer that is not the served tail's
            return ServedError(f"unreadable answer: {exc!r}")
    status = str(error.status() if error is not None else "") or "unknown"
    reason = status.removeprefix("StatusCode.").lower()
    message = error.message() if error is not None else "no answer"
    # Triton says "is not found" for a model it does not serve, "has no available versions" for one
    # that is loading or unloading (a server starting or going down): a loss, not the payload's fault.
    if reason == "not_found" and "is not found" in message:
        return PayloadError("model", f"no server model for payload model {frame.model_id!r}: {message}")
    if reason == "not_found":
        return RequestLostError("model_unavailable", message)
    return RequestLostError(reason, message)
