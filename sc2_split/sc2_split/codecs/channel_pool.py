"""Entropy coding of one latent spread over worker processes, both ways: a head whose encoder
outruns a single encoding core, a tail whose network outruns a single decoding core.

constriction holds the GIL, so threads gain nothing; but each channel's ANS stream is independent,
so each worker codes a contiguous group of channels. Encoding, the float32 latent rows travel
through shared memory and each worker computes its channels' symbols, table indexes, escaped values
and streams; decoding, the workers write the table indexes there. Only the compressed streams (and
the escaped values) are pickled. EntropyCodec still maps escaped values back, and checks payloads,
in the caller's process. Workers are spawned, never forked: the tail process has torch and CUDA
initialised.
"""

import multiprocessing
import traceback
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from multiprocessing.shared_memory import SharedMemory
from typing import NamedTuple

import numpy as np

from sc2_split.codecs.entropy import EntropyTables, ans_decode_channels, channel_models, encode_channel_rows
from sc2_split.codecs.payload import PayloadError

INDEX_DTYPE = np.dtype(np.int32)  # decoding: the table indexes
LATENT_DTYPE = np.dtype(np.float32)  # encoding: the latent's rows
# How long close() lets a worker finish before terminating it.
STOP_TIMEOUT_S = 2.0
WORKER_NAME = "sc2-entropy-coding"
# A worker's reply when it died, or could not be sent its channels.
DIED = ("died",)


class ChannelWorkerError(RuntimeError):
    """A worker died, or failed other than on the payload: this frame is lost, the pool goes on."""


class _Task(NamedTuple):
    """A worker's share of a call: its channels first..stop - 1, whose latent rows (encoding) or table
    indexes (decoding) lie in the shared memory `memory`. Decoding, the group's streams follow as
    bytes, channel c's at bounds[c - first]."""

    op: str  # "encoding" or "decoding"
    memory: str
    first: int
    stop: int
    per_channel: int
    bounds: list[int] | None = None


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection


class _SharedRows:
    """The shared memory that holds a latent's rows or table indexes, grown to the largest latent seen."""

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


class ChannelPool:
    """Worker processes that encode or decode the channels of an entropy payload: pass one to
    `EntropyCodec(tables, pool)`, for either direction or both.

    One call at a time: the latent rows or indexes lie in the pool's shared memory, which its next
    call overwrites (the array `decode` returns included; EntropyCodec is done with it before it
    returns). Encoded bytes are those of in-process encoding, and a latent without int32 symbols
    raises the same ValueError. A corrupt stream comes back as the PayloadError the in-process
    decoder raises. A worker that dies costs its frame a ChannelWorkerError and is
    restarted; the frame is not coded in process instead, as a payload that crashes a worker would
    then crash the tail. Close the pool, or use it as a context manager; workers left open are
    stopped at interpreter exit. Like any spawned process, a worker first runs the main script's
    unguarded top level: start pools from under `if __name__ == "__main__":`.
    """

    def __init__(self, tables: EntropyTables, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"a channel pool needs at least one worker, got {workers}")
        self.tables = tables
        self._context = multiprocessing.get_context("spawn")
        groups = np.array_split(np.arange(tables.channels), min(workers, tables.channels))
        self._groups = [(int(g[0]), int(g[-1]) + 1) for g in groups]
        self._workers: list[_Worker] = []
        self._shared = _SharedRows()
        self._finalizer = weakref.finalize(self, _close, self._workers, self._shared)
        self._workers += self._start(len(self._groups))
        self.restarts = 0

    @property
    def pids(self) -> list[int]:
        """The workers' process ids, to find them in `top` (and to test their deaths)."""
        return [worker.process.pid for worker in self._workers]

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> "ChannelPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def encode(self, rows: np.ndarray) -> tuple[list[bytes], np.ndarray]:
        """Each channel's ANS stream of the latent's (channels, elements per channel) rows, and the
        escaped values of all channels in channel order."""
        per_channel = rows.shape[1]
        memory = self._reserve(per_channel)
        np.ndarray(rows.shape, LATENT_DTYPE, buffer=memory.buf)[:] = rows
        tasks = [
            (_Task("encoding", memory.name, first, stop, per_channel), None) for first, stop in self._groups
        ]
        replies = self._run(tasks)
        results = [replies[i][1] for i in range(len(self._groups))]  # (chunks, raw) of each group
        return [chunk for chunks, _ in results for chunk in chunks], np.concatenate(
            [raw for _, raw in results]
        )

    def decode(self, data: bytes, bounds: Sequence[int], per_channel: int) -> np.ndarray:
        """The (channels, per_channel) table indexes of the streams data[bounds[c]:bounds[c + 1]]."""
        memory = self._reserve(per_channel)
        view = memoryview(data)
        tasks = []
        for first, stop in self._groups:
            local_bounds = [b - bounds[first] for b in bounds[first : stop + 1]]
            task = _Task("decoding", memory.name, first, stop, per_channel, local_bounds)
            tasks.append((task, view[bounds[first] : bounds[stop]]))
        self._run(tasks)
        return np.ndarray((self.tables.channels, per_channel), INDEX_DTYPE, buffer=memory.buf)

    def _reserve(self, per_channel: int) -> SharedMemory:
        if not self._finalizer.alive:
            raise RuntimeError("the channel pool is closed")
        itemsize = max(INDEX_DTYPE.itemsize, LATENT_DTYPE.itemsize)
        return self._shared.reserve(self.tables.channels * per_channel * itemsize)

    def _run(self, tasks: list[tuple[_Task, memoryview | None]]) -> dict[int, tuple]:
        """Sends worker i its task (and streams), then collects every reply: ("ok", result) each, or
        raises."""
        sent = []
        for i, (task, streams) in enumerate(tasks):
            try:
                self._workers[i].conn.send(task)
                if streams is not None:
                    self._workers[i].conn.send_bytes(streams)
                sent.append(i)
            except OSError:  # died since the last frame
                pass
        replies = self._collect(sent)
        self._raise_failures(replies, tasks[0][0].op)
        return replies

    def _collect(self, sent: list[int]) -> dict[int, tuple]:
        """Each worker's reply: ("ok", result), ("payload", reason, message), ("value", message),
        ("error", traceback), DIED."""
        replies: dict[int, tuple] = {i: DIED for i in range(len(self._workers)) if i not in sent}
        waiting = {self._workers[i].conn: i for i in sent}
        while waiting:
            for conn in wait(list(waiting)):
                i = waiting.pop(conn)
                try:
                    replies[i] = conn.recv()
                except (EOFError, OSError):  # the worker's end closed: it died
                    replies[i] = DIED
        return replies

    def _raise_failures(self, replies: dict[int, tuple], op: str) -> None:
        """Restarts dead workers, then raises what in-process coding would have: the error of the
        lowest failing channel group, as in-process coding stops at the first bad channel."""
        dead = sorted(i for i, reply in replies.items() if reply == DIED)
        if dead:
            exits = [self._replace(i) for i in dead]
            self.restarts += len(dead)
            raise ChannelWorkerError(
                f"entropy coding worker(s) {', '.join(exits)} died while {op} a frame; "
                "restarted, the frame is lost"
            )
        for i in sorted(replies):
            reply = replies[i]
            if reply[0] == "ok":
                continue
            if reply[0] == "payload":
                raise PayloadError(reply[1], reply[2])
            if reply[0] == "value":
                raise ValueError(reply[1])
            first, stop = self._groups[i]
            raise ChannelWorkerError(f"entropy {op} failed on channels {first}-{stop - 1}:\n{reply[1]}")

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
                raise ChannelWorkerError(
                    f"entropy coding worker (pid {worker.process.pid}) exited while starting, "
                    f"exit code {worker.process.exitcode}"
                ) from None
        return started


def _serve(conn: Connection, tables: EntropyTables) -> None:
    """A worker: codes the channel groups it is sent, their rows in the shared memory they name."""
    models = channel_models(tables)
    conn.send(None)  # ready
    memory: SharedMemory | None = None
    while True:
        try:
            task = conn.recv()
            streams = conn.recv_bytes() if task.op == "decoding" else b""
        except EOFError:  # the pool closed, or its process is gone
            return
        if memory is None or memory.name != task.memory:  # the pool grew its memory
            if memory is not None:
                memory.close()
            memory = SharedMemory(task.memory)
        conn.send(_code_group(models, tables, task, streams, memory))


def _code_group(
    models: list, tables: EntropyTables, task: _Task, streams: bytes, memory: SharedMemory
) -> tuple:
    channels = range(task.first, task.stop)
    dtype = LATENT_DTYPE if task.op == "encoding" else INDEX_DTYPE
    # A view that dies with this call: the memory cannot be closed while one is alive.
    rows = np.ndarray(
        (len(channels), task.per_channel),
        dtype,
        buffer=memory.buf,
        offset=task.first * task.per_channel * dtype.itemsize,
    )
    try:
        if task.op == "encoding":
            return ("ok", encode_channel_rows(models, tables, rows, channels))
        ans_decode_channels(models, streams, task.bounds, channels, rows)
    except Exception as err:
        if isinstance(err, PayloadError):  # a corrupt stream
            return ("payload", err.reason, str(err))
        if isinstance(err, ValueError) and task.op == "encoding":  # a latent value without a symbol
            return ("value", str(err))
        return ("error", traceback.format_exc())
    return ("ok", None)


def _close(workers: list[_Worker], shared: _SharedRows) -> None:
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
