"""NewestWinsWorker, the tail's handoff from decoding to the network: newest item only, drops counted,
a failing item reported without stopping the thread, and a clean stop."""

import queue
import threading
import time
from collections.abc import Iterator

import pytest
from sc2_split.ros.newest_wins import NewestWinsWorker

TIMEOUT_S = 10.0  # only ever reached when a test fails


class Stage:
    """A handler that reports each item as it starts, then waits until the test releases it."""

    def __init__(self) -> None:
        self.started: queue.Queue[object] = queue.Queue()
        self.handled: queue.Queue[object] = queue.Queue()
        self.errors: queue.Queue[Exception] = queue.Queue()
        self.release = threading.Semaphore(0)
        self.worker = NewestWinsWorker(self.handle, self.errors.put, name="test_stage")

    def handle(self, item: object) -> None:
        self.started.put(item)
        assert self.release.acquire(timeout=TIMEOUT_S)
        if isinstance(item, Exception):
            raise item
        self.handled.put(item)

    def next_started(self) -> object:
        return self.started.get(timeout=TIMEOUT_S)


@pytest.fixture
def stage() -> Iterator[Stage]:
    stage = Stage()
    yield stage
    stage.release.release(100)  # never leave the thread waiting
    stage.worker.close()


def test_items_put_while_the_stage_is_busy_leave_only_the_newest(stage: Stage) -> None:
    stage.worker.put("a")
    assert stage.next_started() == "a"
    for item in ("b", "c", "d"):
        stage.worker.put(item)
    assert stage.worker.dropped == 2  # b and c, replaced before the stage was free
    stage.release.release(2)
    assert stage.next_started() == "d"
    assert [stage.handled.get(timeout=TIMEOUT_S) for _ in range(2)] == ["a", "d"]
    assert stage.started.empty() and stage.worker.dropped == 2


def test_items_put_one_at_a_time_are_all_handled(stage: Stage) -> None:
    for item in range(5):
        stage.worker.put(item)
        stage.release.release()
        assert stage.handled.get(timeout=TIMEOUT_S) == item
    assert stage.worker.dropped == 0


def test_an_exception_goes_to_on_error_and_the_thread_goes_on(stage: Stage) -> None:
    failure = RuntimeError("network failed")
    stage.worker.put(failure)
    stage.release.release()
    assert stage.errors.get(timeout=TIMEOUT_S) is failure
    stage.worker.put("after")
    stage.release.release()
    assert stage.handled.get(timeout=TIMEOUT_S) == "after"
    assert stage.errors.empty()


def test_close_finishes_the_current_item_and_drops_the_waiting_one(stage: Stage) -> None:
    stage.worker.put("current")
    assert stage.next_started() == "current"
    stage.worker.put("waiting")
    closing = threading.Thread(target=stage.worker.close)
    closing.start()
    deadline = time.monotonic() + TIMEOUT_S
    while not stage.worker._closed:  # close() waits for "current": release it only once closing
        assert time.monotonic() < deadline
        time.sleep(0.001)
    stage.release.release(2)
    closing.join(TIMEOUT_S)
    assert not closing.is_alive() and not stage.worker._thread.is_alive()
    assert stage.handled.get_nowait() == "current"
    assert stage.started.empty() and stage.handled.empty()
    with pytest.raises(RuntimeError, match="closed"):
        stage.worker.put("late")
    stage.worker.close()  # twice is harmless


def test_close_stops_an_idle_stage() -> None:
    worker = NewestWinsWorker(lambda item: None, lambda exc: None, name="test_idle")
    worker.close()
    assert not worker._thread.is_alive()
