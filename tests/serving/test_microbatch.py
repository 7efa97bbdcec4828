"""MicroBatcher with fake models: how requests are grouped, a full queue, a failing batch, shutdown."""

import asyncio
import threading
import time

import numpy as np
import pytest

from textclf.serving.microbatch import MicroBatcher, Unavailable


class GatedModel:
    """A fake model whose calls wait for `gate`; it records each call's texts. A row per text: [len(text), i]."""

    def __init__(self):
        self.calls: list[list[str]] = []
        self.entered, self.gate = threading.Event(), threading.Event()

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        if any("boom" in t for t in texts):
            raise ValueError("boom\nsecond line")
        return np.array([[len(t), i] for i, t in enumerate(texts)], dtype=np.float32)


def submit(batcher: MicroBatcher, texts: list[str]) -> list:
    """Queue texts from a plain thread; the returned list receives (rows, error) once done."""
    got = []
    batcher.submit(texts, lambda rows, error: got.append((rows, error)))
    return got


def wait_for(check, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def model():
    m = GatedModel()
    yield m
    m.gate.set()  # never leave a worker blocked behind a failed test


def test_waiting_requests_run_together_whole_and_up_to_the_cap(model):
    batcher = MicroBatcher(model, max_batch=5, window_ms=0, max_queue=20)
    try:
        first = submit(batcher, ["a"])
        assert model.entered.wait(30)  # the worker is busy: what comes now waits in the queue
        a, b, c, big = (submit(batcher, t) for t in (["bb", "ccc"], ["dddd", "e"], ["ff", "g"], ["h"] * 7))
        assert batcher.queued == 13
        model.gate.set()
        wait_for(lambda: len(big) == 1)
        # whole requests, oldest first, no more than 5 texts; a request over the cap runs alone
        assert [len(call) for call in model.calls] == [1, 4, 2, 7]
        assert model.calls[1] == ["bb", "ccc", "dddd", "e"]
        np.testing.assert_array_equal(b[0][0], [[4, 2], [1, 3]])  # its own rows of the shared call
        assert all(got[0][1] is None for got in (first, a, c, big)) and batcher.queued == 0
    finally:
        batcher.stop()


def test_the_window_gathers_requests_that_arrive_soon_after_the_first(model):
    model.gate.set()
    batcher = MicroBatcher(model, max_batch=64, window_ms=300, max_queue=64)
    try:
        done = [submit(batcher, [f"text {i}"]) for i in range(6)]
        wait_for(lambda: all(done))
        assert len(model.calls) == 1 and batcher.batches == 1 and batcher.texts == 6
    finally:
        batcher.stop()


def test_after_a_batch_the_window_waits_for_the_clients_it_answered(model):
    """A request that came in while the worker was busy still waits one window once the worker is free, so
    the requests the finished batch's clients send next join it: two cohorts of clients never form."""
    batcher = MicroBatcher(model, max_batch=64, window_ms=300, max_queue=64)
    try:
        first = submit(batcher, ["a"])
        assert model.entered.wait(30)  # busy with "a"
        behind = submit(batcher, ["b"])
        time.sleep(0.4)  # "b" has waited longer than the window, all of it behind the busy worker
        model.gate.set()
        wait_for(lambda: len(first) == 1)
        follow_up = submit(batcher, ["c"])  # "a"'s client, answered, sends its next request at once
        wait_for(lambda: behind and follow_up)
        assert model.calls == [["a"], ["b", "c"]]
    finally:
        batcher.stop()


def test_a_full_queue_refuses_at_once_and_takes_texts_again_once_it_drains(model):
    batcher = MicroBatcher(model, max_batch=1, window_ms=0, max_queue=3)
    try:
        submit(batcher, ["running"])
        assert model.entered.wait(30)
        queued = submit(batcher, ["x", "y"])
        with pytest.raises(Unavailable, match=r"busy \(2 texts waiting, at most 3\)"):
            submit(batcher, ["one", "two"])  # 4 > 3: refused without waiting for the model
        submit(batcher, ["fits"])
        with pytest.raises(Unavailable):
            submit(batcher, ["z"])
        model.gate.set()
        wait_for(lambda: batcher.queued == 0 and len(queued) == 1)
        assert queued[0][1] is None
        wait_for(lambda: len(model.calls) == 3)
        submit(batcher, ["again"])
    finally:
        batcher.stop()


def test_a_failing_batch_fails_its_own_requests_and_the_worker_goes_on(model):
    batcher = MicroBatcher(model, max_batch=2, window_ms=0, max_queue=10)
    try:
        submit(batcher, ["first"])
        assert model.entered.wait(30)
        bad, neighbour, later = (submit(batcher, [t]) for t in ("boom", "shares its batch", "ok"))
        model.gate.set()
        wait_for(lambda: len(later) == 1)
        assert [len(c) for c in model.calls] == [1, 2, 1]
        for got in (bad, neighbour):
            assert got[0][0] is None and isinstance(got[0][1], ValueError)
        assert later[0][1] is None and batcher.running
    finally:
        batcher.stop()


def test_a_model_giving_the_wrong_number_of_rows_is_an_error_not_a_mix_up():
    batcher = MicroBatcher(lambda texts: np.zeros((1, 2)), window_ms=0)
    try:
        got = submit(batcher, ["a", "b"])
        wait_for(lambda: got)
        assert isinstance(got[0][1], RuntimeError) and "1 rows for 2 texts" in str(got[0][1])
    finally:
        batcher.stop()


def test_stop_finishes_the_running_batch_refuses_the_rest_and_ends_the_thread(model):
    batcher = MicroBatcher(model, max_batch=1, window_ms=0)
    running = submit(batcher, ["running"])
    assert model.entered.wait(30)
    waiting = submit(batcher, ["waiting"])
    stopper = threading.Thread(target=batcher.stop)
    stopper.start()
    wait_for(lambda: len(waiting) == 1)  # refused at once, while the running batch still computes
    assert isinstance(waiting[0][1], Unavailable) and "shutting down" in str(waiting[0][1])
    model.gate.set()
    stopper.join(30)
    assert not stopper.is_alive() and not batcher.running
    assert running[0][1] is None and len(model.calls) == 1
    with pytest.raises(Unavailable, match="shutting down"):
        submit(batcher, ["late"])
    batcher.start()  # a server that starts again gets a worker again
    assert batcher.running
    batcher.stop()


def test_await_predict_from_an_event_loop():
    batcher = MicroBatcher(lambda texts: np.array([[len(t)] for t in texts]), window_ms=50)

    async def main():
        return await asyncio.gather(*(batcher.predict(["x" * n, "y"]) for n in (1, 2, 3)))

    try:
        results = asyncio.run(main())
    finally:
        batcher.stop()
    assert [r[:, 0].tolist() for r in results] == [[1, 1], [2, 1], [3, 1]]
    assert batcher.batches == 1
