"""A stage of a node that runs on a thread of its own and takes only the newest item handed to it.

A producer faster than the stage therefore costs dropped items (counted), never a queue or a stale
result: the tail node decodes the next bottleneck while its network runs this one.
"""

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class NewestWinsWorker(Generic[T]):
    """Runs `handle` on its own thread, on the newest item `put` (never None); an item replaced before
    the thread took it is dropped and counted in `dropped`. An exception from `handle` goes to
    `on_error`, and the thread goes on with the next item. `close` stops the thread."""

    def __init__(self, handle: Callable[[T], None], on_error: Callable[[Exception], None], name: str) -> None:
        self._handle = handle
        self._on_error = on_error
        self._changed = threading.Condition()
        self._waiting: T | None = None
        self._closed = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        """Hands `item` to the thread, in place of one it has not taken yet (dropped)."""
        with self._changed:
            if self._closed:
                raise RuntimeError("the worker is closed")
            if self._waiting is not None:
                self.dropped += 1
            self._waiting = item
            self._changed.notify()

    def close(self) -> None:
        """Lets the thread finish the item it is handling, then stops it; an item still waiting is
        not handled. Closing twice is harmless."""
        with self._changed:
            self._closed = True
            self._waiting = None
            self._changed.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting is not None or self._closed)
                if self._closed:
                    return
                item, self._waiting = self._waiting, None
            try:
                self._handle(item)
            except Exception as exc:  # one item's failure must not stop the stage
                self._on_error(exc)
