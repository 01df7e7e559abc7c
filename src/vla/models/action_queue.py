"""Turning predicted chunks into one action per step: an action queue, or ACT temporal ensembling."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np


class ActionQueue:
    """Executes the first ``n_action_steps`` actions of each chunk, then asks for a new chunk."""

    def __init__(self, n_action_steps: int) -> None:
        self.n_action_steps = n_action_steps
        self._queue: deque[np.ndarray] = deque()

    def reset(self) -> None:
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)

    def next(self, predict: Callable[[], np.ndarray]) -> np.ndarray:
        if not self._queue:
            chunk = predict()
            self._queue.extend(chunk[: self.n_action_steps])
        return self._queue.popleft()


class TemporalEnsembler:
    """ACT temporal ensembling: a chunk is predicted at every step; the action for step t is the
    weighted mean of every prediction made for t, with weight exp(-coeff * i), i = 0 the oldest."""

    def __init__(self, coeff: float, chunk: int) -> None:
        self.coeff = coeff
        self.chunk = chunk
        self._chunks: deque[tuple[int, np.ndarray]] = deque()
        self._t = 0

    def reset(self) -> None:
        self._chunks.clear()
        self._t = 0

    def next(self, predict: Callable[[], np.ndarray]) -> np.ndarray:
        self._chunks.append((self._t, predict()))
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= self._t:
            self._chunks.popleft()
        preds = np.stack([c[self._t - start] for start, c in self._chunks])  # oldest first
        weights = np.exp(-self.coeff * np.arange(len(preds)))
        self._t += 1
        return (weights[:, None] * preds).sum(0) / weights.sum()
