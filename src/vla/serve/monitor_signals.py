"""Raw failure signals of a running policy, one value per signal per control step.

- ``inconsistency``: how much a new chunk disagrees with what the previous chunk planned for the same steps
  (mean distance over their overlap, per action dim scale); Sentinel's temporal-consistency idea.
- ``stall``: the actions ask for motion but the state does not move: log(1 + mean commanded motion over the
  window / (the state's displacement over it + ``state_eps``)).
- ``oscillation``: the state moves but gets nowhere: path length minus displacement over the window (state
  units), large for back-and-forth or circling (repeated states), small for jitter at rest.
- ``ood``: distance of the policy's features for the latest observation to those seen on successful
  rollouts (Mahalanobis with a shrunk covariance, ``FeatureBank``), when features are given.
- ``spread``: the mean standard deviation of several sampled chunks, for sampling heads, when given.

A signal that has nothing to say yet (no overlap so far, no features) is 0. numpy only (robot side).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

SIGNALS = ("inconsistency", "stall", "oscillation", "ood", "spread")


@dataclass(frozen=True)
class SignalConfig:
    window: int = 10                          # steps over which motion and progress are judged
    state_dims: tuple[int, ...] | None = None  # state dims that move with the actions (default: all)
    motion_dims: tuple[int, ...] | None = None  # action dims that command motion (default: all)
    state_eps: float = 1e-3                   # displacement (state units) that counts as "not moving"
    eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"window: expected >= 2 steps, got {self.window}")


class FeatureBank:
    """Mean and precision of policy features on successful rollouts; ``distance(f)`` is Mahalanobis / sqrt(D)."""

    def __init__(self, mean: np.ndarray, precision: np.ndarray) -> None:
        self.mean = np.asarray(mean, np.float64)
        self.precision = np.asarray(precision, np.float64)
        if self.precision.shape != (self.mean.size, self.mean.size):
            raise ValueError(f"precision: expected shape {(self.mean.size,) * 2}, got {self.precision.shape}")

    @classmethod
    def fit(cls, features: np.ndarray, shrinkage: float = 0.1) -> FeatureBank:
        """Fit on [N, D] features; the covariance is shrunk toward its diagonal so it inverts with N < D."""
        x = np.asarray(features, np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"features: expected [N >= 2, D], got shape {list(x.shape)}")
        mean = x.mean(0)
        cov = np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])
        diag = np.diag(np.diag(cov)) + 1e-6 * np.eye(len(mean))
        return cls(mean, np.linalg.inv((1 - shrinkage) * cov + shrinkage * diag + 1e-9 * np.eye(len(mean))))

    def distance(self, feature: np.ndarray) -> float:
        d = np.asarray(feature, np.float64).reshape(-1) - self.mean
        return float(np.sqrt(max(d @ self.precision @ d, 0.0) / d.size))


class SignalTracker:
    """Feed ``on_chunk`` when the policy answers and ``on_step`` every control step; ``on_step`` returns
    the raw signals (``SIGNALS``) for that step."""

    def __init__(self, config: SignalConfig | None = None, bank: FeatureBank | None = None,
                 action_scale: np.ndarray | None = None) -> None:
        self.config = config or SignalConfig()
        self.bank = bank
        self.action_scale = None if action_scale is None else np.asarray(action_scale, np.float64)
        self.reset()

    def reset(self) -> None:
        self._chunk: np.ndarray | None = None  # the latest chunk and the step its action 0 is for
        self._chunk_step = 0
        self._states: deque[np.ndarray] = deque(maxlen=self.config.window + 1)
        self._motion: deque[float] = deque(maxlen=self.config.window)
        self._last = dict.fromkeys(SIGNALS, 0.0)

    def _scaled(self, actions: np.ndarray) -> np.ndarray:
        a = np.asarray(actions, np.float64)
        return a / self.action_scale if self.action_scale is not None else a

    def on_chunk(self, chunk: np.ndarray, step: int, features: np.ndarray | None = None,
                 samples: np.ndarray | None = None) -> None:
        """A chunk [H, A] whose action 0 is meant for ``step``; optional features [D] and samples [S, H, A]."""
        chunk = np.asarray(chunk, np.float64)
        if self._chunk is not None:
            offset = step - self._chunk_step
            overlap = self._chunk.shape[0] - offset
            if 0 <= offset and overlap > 0:
                n = min(overlap, chunk.shape[0])
                diff = self._scaled(chunk[:n]) - self._scaled(self._chunk[offset:offset + n])
                self._last["inconsistency"] = float(np.linalg.norm(diff, axis=1).mean() / np.sqrt(chunk.shape[1]))
        self._chunk, self._chunk_step = chunk, step
        if features is not None and self.bank is not None:
            self._last["ood"] = self.bank.distance(features)
        if samples is not None:
            s = self._scaled(np.asarray(samples, np.float64))
            self._last["spread"] = float(s.std(axis=0).mean()) if s.shape[0] > 1 else 0.0

    def on_step(self, state: np.ndarray, action: np.ndarray) -> dict[str, float]:
        """Signals after executing ``action`` from ``state`` (both in robot units)."""
        cfg = self.config
        s = np.asarray(state, np.float64).reshape(-1)
        if cfg.state_dims is not None:
            s = s[list(cfg.state_dims)]
        a = self._scaled(np.asarray(action, np.float64).reshape(-1))
        if cfg.motion_dims is not None:
            a = a[list(cfg.motion_dims)]
        self._states.append(s)
        self._motion.append(float(np.linalg.norm(a)))
        if len(self._states) > cfg.window:
            states = np.stack(self._states)                                   # [W + 1, S]
            displacement = float(np.linalg.norm(states[-1] - states[0]))
            path = float(np.linalg.norm(np.diff(states, axis=0), axis=1).sum())
            commanded = float(np.mean(self._motion))
            self._last["stall"] = float(np.log1p(commanded / (displacement + cfg.state_eps)))
            self._last["oscillation"] = max(0.0, path - displacement)
        return dict(self._last)
