"""Fakes shared by the executor and watchdog tests: a hold action, tagged chunks, a fake clock and a gated
source whose replies the test hands over.

Chunks encode where they come from: row k of a chunk computed from step t0's observation is [t0 + k, t0].
"""

from __future__ import annotations

import queue

import numpy as np

from vla.serve.executor import ChunkExecutor

HOLD = np.array([-1.0, -1.0], np.float32)


def hold(obs, last):
    return HOLD


def tagged_chunk(t0: int, h: int = 8) -> np.ndarray:
    return np.array([[t0 + k, t0] for k in range(h)], np.float32)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Gate:
    """A source whose replies the test hands over (an exception is raised in the worker)."""

    def __init__(self) -> None:
        self.calls: queue.Queue = queue.Queue()
        self._replies: queue.Queue = queue.Queue()

    def __call__(self, obs):
        self.calls.put(obs)
        r = self._replies.get(timeout=10)
        if isinstance(r, BaseException):
            raise r
        return r

    def next_call(self, timeout: float = 5):
        return self.calls.get(timeout=timeout)

    def release(self, ex: ChunkExecutor, reply) -> None:
        self._replies.put(reply)
        assert ex.wait_for_reply(5)

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc) -> None:  # frees a call still waiting, so close() joins the worker at once
        for _ in range(4):
            self._replies.put(RuntimeError("test over"))
