"""Batches from the training cache: a random frame + the next H actions with a mask (+ the first frame of
its episode for context cameras); prefetched.

The batch of step ``s`` depends only on (seed, rank, s), so a resumed run sees exactly the batches
the uninterrupted run would have seen.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import numpy as np
import torch

from .cache import TrainingCache


def action_chunks(cache: TrainingCache, idx: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """The next ``chunk`` actions from each frame ``idx`` [B] -> (actions [B, H, A], mask [B, H]); past the
    episode's end the last action is repeated and masked out."""
    offsets = idx[:, None] + np.arange(chunk)[None]
    end = cache.episode_end[idx][:, None]
    return cache.action[np.minimum(offsets, end - 1)], offsets < end


def episode_starts(cache: TrainingCache) -> np.ndarray:
    """The global index of the first frame of every frame's episode [N] (episodes are contiguous); built once
    per sampler, then indexed per batch."""
    ends = np.unique(cache.episode_end)  # sorted exclusive ends, one per episode
    starts = np.concatenate([[0], ends[:-1]])
    return starts[np.searchsorted(ends, np.arange(cache.num_frames), side="right")]


class BatchSampler:
    """Deterministic random batches in the format of docs/contracts.md (robot units)."""

    def __init__(self, cache: TrainingCache, batch_size: int, chunk: int, cameras: list[str], seed: int,
                 rank: int = 0, context_cameras: list[str] | None = None) -> None:
        self.cache, self.batch_size, self.chunk = cache, batch_size, chunk
        self.cameras, self.seed, self.rank = list(cameras), seed, rank
        self.context_cameras = list(context_cameras or [])
        self._starts = episode_starts(cache) if self.context_cameras else None

    def indices(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.rank, step])
        return np.sort(rng.integers(0, self.cache.num_frames, self.batch_size))

    def batch(self, step: int) -> dict[str, Any]:
        c = self.cache
        idx = self.indices(step)
        actions, mask = action_chunks(c, idx, self.chunk)
        batch = {
            "images": {cam: torch.from_numpy(np.ascontiguousarray(c.images[cam][idx])) for cam in self.cameras},
            "state": torch.from_numpy(c.state[idx]),
            "instruction": [c.instructions[i] for i in c.instruction_id[idx]],
            "action": torch.from_numpy(actions),
            "action_mask": torch.from_numpy(mask),
        }
        if self._starts is not None:
            first = self._starts[idx]  # sorted, as idx is
            batch["context_images"] = {cam: torch.from_numpy(np.ascontiguousarray(c.images[cam][first]))
                                       for cam in self.context_cameras}
        if c.env_state is not None:  # an auxiliary target (vla.models.aux_env_state), never an input
            batch["environment_state"] = torch.from_numpy(c.env_state[idx])
        return batch


class Prefetcher:
    """Builds batches for steps [start, stop) in a background thread; ``next()`` records the wait."""

    def __init__(self, sampler: BatchSampler, start: int, stop: int, depth: int = 4) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self.wait_s = 0.0
        self._thread = threading.Thread(target=self._run, args=(sampler, start, stop), daemon=True)
        self._thread.start()

    def _run(self, sampler: BatchSampler, start: int, stop: int) -> None:
        try:
            for step in range(start, stop):
                item = (step, sampler.batch(step))
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as exc:  # surfaced in next()
            self._queue.put((None, exc))

    def next(self) -> tuple[int, dict[str, Any]]:
        t0 = time.perf_counter()
        step, item = self._queue.get()
        self.wait_s += time.perf_counter() - t0
        if step is None:
            raise RuntimeError("batch loading failed") from item
        return step, item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
