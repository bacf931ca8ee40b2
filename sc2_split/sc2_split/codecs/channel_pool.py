"""Entropy decoding of one latent spread over worker processes, for a tail whose network outruns a
single decoding core.

constriction holds the GIL, so threads gain nothing; but each channel's ANS stream is independent,
so each worker decodes a contiguous group of channels and writes the table indexes into shared
memory (nothing decoded is pickled back). EntropyCodec still runs the payload checks before and the
escaped values after, in the tail's process. Workers are spawned, never forked: the tail process has
torch and CUDA initialised.
"""

import multiprocessing
import traceback
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from sc2_split.codecs.entropy import EntropyTables, ans_decode_channels, channel_models
from sc2_split.codecs.payload import PayloadError

INDEX_DTYPE = np.dtype(np.int32)
# How long close() lets a worker finish before terminating it.
STOP_TIMEOUT_S = 2.0
WORKER_NAME = "sc2-entropy-decode"
# A worker's reply when it died, or could not be sent its channels.
DIED = ("died",)


class DecodeWorkerError(RuntimeError):
    """A worker died, or failed other than on the payload: this frame is lost, the pool goes on."""


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection


class _SharedIndexes:
    """The shared memory the workers write table indexes into, grown to the largest latent seen."""

    def __init__(self) -> None:
        self.memory: SharedMemory | None = None

    def reserve(self, size: int) -> SharedMemory:
        if self.memory is None or self.memory.size < size:
            self.release()
            self.memory = SharedMemory(create=True, size=size)
        return self.memory

    def release(self) -> None:
        if self.memory is not None:
            self.memory.close()
            self.memory.unlink()
            self.memory = None


class DecodePool:
    """Worker processes that decode the channels of an entropy payload: pass one to
    `EntropyCodec(tables, decode_channels=pool)`.

    One decode at a time: the array a call returns lies in the pool's shared memory, which its next
    call overwrites (EntropyCodec is done with it before it returns). A corrupt stream comes back as
    the PayloadError the in-process decoder raises. A worker that dies costs its frame a
    DecodeWorkerError and is restarted; the frame is not decoded in process instead, as a payload
    that crashes a worker would then crash the tail. Close the pool, or use it as a context manager;
    workers left open are stopped at interpreter exit. Like any spawned process, a worker first runs
    the main script's unguarded top level: start pools from under `if __name__ == "__main__":`.
    """

    def __init__(self, tables: EntropyTables, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"a decode pool needs at least one worker, got {workers}")
        self.tables = tables
        self._context = multiprocessing.get_context("spawn")
        groups = np.array_split(np.arange(tables.channels), min(workers, tables.channels))
        self._groups = [(int(g[0]), int(g[-1]) + 1) for g in groups]
        self._workers: list[_Worker] = []
        self._shared = _SharedIndexes()
        self._finalizer = weakref.finalize(self, _close, self._workers, self._shared)
        self._workers += self._start(len(self._groups))
        self.restarts = 0

    @property
    def pids(self) -> list[int]:
        """The workers' process ids, to find them in `top` (and to test their deaths)."""
        return [worker.process.pid for worker in self._workers]

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> "DecodePool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, data: bytes, bounds: Sequence[int], per_channel: int) -> np.ndarray:
        """The (channels, per_channel) table indexes of the streams data[bounds[c]:bounds[c + 1]]."""
        if not self._finalizer.alive:
            raise RuntimeError("the decode pool is closed")
        channels = self.tables.channels
        memory = self._shared.reserve(channels * per_channel * INDEX_DTYPE.itemsize)
        view = memoryview(data)
        sent = []
        for i, (first, stop) in enumerate(self._groups):
            local_bounds = [b - bounds[first] for b in bounds[first : stop + 1]]
            request = (memory.name, first, stop, per_channel, local_bounds)
            try:
                self._workers[i].conn.send(request)
                self._workers[i].conn.send_bytes(view[bounds[first] : bounds[stop]])
                sent.append(i)
            except OSError:  # died since the last frame
                pass
        replies = self._collect(sent)
        self._raise_failures(replies)
        return np.ndarray((channels, per_channel), INDEX_DTYPE, buffer=memory.buf)

    def _collect(self, sent: list[int]) -> dict[int, tuple | None]:
        """Each worker's reply: None (decoded), ("payload", reason, message), ("error", traceback), DIED."""
        replies: dict[int, tuple | None] = {i: DIED for i in range(len(self._workers)) if i not in sent}
        waiting = {self._workers[i].conn: i for i in sent}
        while waiting:
            for conn in wait(list(waiting)):
                i = waiting.pop(conn)
                try:
                    replies[i] = conn.recv()
                except (EOFError, OSError):  # the worker's end closed: it died
                    replies[i] = DIED
        return replies

    def _raise_failures(self, replies: dict[int, tuple | None]) -> None:
        """Restarts dead workers, then raises what the in-process decoder would have: the error of
        the lowest failing channel group, as the in-process decoder stops at the first bad channel."""
        dead = sorted(i for i, reply in replies.items() if reply == DIED)
        if dead:
            exits = [self._replace(i) for i in dead]
            self.restarts += len(dead)
            raise DecodeWorkerError(
                f"entropy decode worker(s) {', '.join(exits)} died while decoding a frame; "
                "restarted, the frame is lost"
            )
        for i in sorted(replies):
            reply = replies[i]
            if reply is None:
                continue
            if reply[0] == "payload":
                raise PayloadError(reply[1], reply[2])
            first, stop = self._groups[i]
            raise DecodeWorkerError(
                f"entropy decode worker failed on channels {first}-{stop - 1}:\n{reply[1]}"
            )

    def _replace(self, i: int) -> str:
        """Restarts worker i; describes the one that died."""
        old = self._workers[i]
        _stop([old])  # one that lives on (a failed send) is stopped too
        self._workers[i] = self._start(1)[0]
        return f"{i} (pid {old.process.pid}, exit code {old.process.exitcode})"

    def _start(self, count: int) -> list[_Worker]:
        """`count` workers, started together, each ready (its models built) when this returns."""
        started = []
        for _ in range(count):
            conn, child_conn = self._context.Pipe()
            process = self._context.Process(
                target=_serve, args=(child_conn, self.tables), name=WORKER_NAME, daemon=True
            )
            process.start()
            child_conn.close()  # so that the worker's death reads as end of file here
            started.append(_Worker(process, conn))
        for worker in started:
            try:
                worker.conn.recv()
            except EOFError:
                _stop(started)
                raise DecodeWorkerError(
                    f"entropy decode worker (pid {worker.process.pid}) exited while starting, "
                    f"exit code {worker.process.exitcode}"
                ) from None
        return started


def _serve(conn: Connection, tables: EntropyTables) -> None:
    """A worker: decodes the channel groups it is sent into the shared memory they name."""
    models = channel_models(tables)
    conn.send(None)  # ready
    memory: SharedMemory | None = None
    while True:
        try:
            name, first, stop, per_channel, bounds = conn.recv()
            data = conn.recv_bytes()
        except EOFError:  # the pool closed, or the tail process is gone
            return
        if memory is None or memory.name != name:  # the pool grew its memory
            if memory is not None:
                memory.close()
            memory = SharedMemory(name)
        reply = _decode_group(models, data, bounds, range(first, stop), memory, per_channel)
        conn.send(reply)


def _decode_group(
    models: list, data: bytes, bounds: list[int], channels: range, memory: SharedMemory, per_channel: int
) -> tuple | None:
    out = np.ndarray(
        (len(channels), per_channel),
        INDEX_DTYPE,
        buffer=memory.buf,
        offset=channels.start * per_channel * INDEX_DTYPE.itemsize,
    )
    try:
        ans_decode_channels(models, data, bounds, channels, out)
    except PayloadError as err:
        return ("payload", err.reason, str(err))
    except Exception:
        return ("error", traceback.format_exc())
    return None


def _close(workers: list[_Worker], shared: _SharedIndexes) -> None:
    _stop(workers)
    shared.release()


def _stop(workers: list[_Worker]) -> None:
    """Closes each worker's pipe (it reads end of file and exits); terminates one that does not."""
    for worker in workers:
        worker.conn.close()
    for worker in workers:
        worker.process.join(STOP_TIMEOUT_S)
        if worker.process.is_alive():
            worker.process.terminate()
            worker.process.join()
