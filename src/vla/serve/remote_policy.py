"""RemotePolicy: a served policy driven like an in-process one (``reset()``, ``select_action(obs)``).

The chain a robot runs: PolicyClient -> ChunkExecutor (action queue, watchdog, hold) -> SafetyFilter on the
executed action with the measured state (the limits the server announced in its metadata, unless the
caller gives its own). Every executed action is recorded: where it came from, its observation's age, what
the filter did. A policy of several robots is driven as one of them (``embodiment=``): its cameras, state and
action dims and the limits the server announced for it; each observation is sent with that robot's name.
numpy only, like the client.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla.serve.client import PolicyClient
from vla.serve.executor import ChunkExecutor, ExecutorConfig
from vla.serve.safety_check import limit_violations


@dataclass(frozen=True)
class RemoteConfig:
    """The parts of a policy's config a rollout needs, read from the server's metadata."""

    cameras: list[str]
    image_size: int
    chunk: int
    n_action_steps: int
    state_dim: int
    action_dim: int


class RemotePolicy:
    """See module docstring. ``safety``: True = the server's config, False = none, or a SafetyConfig."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 10.0, safety: Any = True,
                 mode: str = "sync", control_period_s: float | None = None, deadline_periods: float = 2.0,
                 threshold: int | None = None, merge: str = "replace", embodiment: str | None = None) -> None:
        self.client = PolicyClient(url, api_key=api_key, timeout_s=timeout_s)
        meta = self.client.metadata
        robots = meta.get("embodiments") or {}
        if robots and embodiment not in robots:
            self.client.close()
            raise ValueError(f"embodiment: this policy drives several robots {sorted(robots)}: name one, got "
                             f"{embodiment!r}")
        if embodiment is not None and not robots:
            self.client.close()
            raise ValueError(f"embodiment: {embodiment!r} given, but the served policy drives one robot")
        self.embodiment = embodiment
        robot = robots[embodiment] if embodiment is not None else meta
        cams = robot["cameras"]
        sizes = {tuple(v) for v in cams.values()}
        self.config = RemoteConfig(list(cams), int(next(iter(sizes))[0]), int(meta.get("chunk") or 1),
                                   int(meta.get("n_action_steps") or meta.get("chunk") or 1), int(robot["state_dim"]),
                                   int(robot["action_dim"]))
        announced = meta.get("safety")
        if embodiment is not None and announced:
            announced = (announced.get("embodiments") or {}).get(embodiment)
        self.safety_filter = self._make_filter(safety, announced)
        fps = meta.get("fps") or 10.0
        self.executor = ChunkExecutor(
            lambda obs: self.predict_chunk(obs), self._hold,
            ExecutorConfig(mode=mode, n_action_steps=self.config.n_action_steps,
                           threshold=threshold if threshold is not None else self.config.n_action_steps,
                           merge=merge, control_period_s=control_period_s or 1.0 / float(fps),
                           deadline_periods=deadline_periods),
            liveness=lambda: self.client.connected)
        self.records: list[dict[str, Any]] = []
        self.server_safety: list[dict[str, Any]] = []
        self._last_action: np.ndarray | None = None

    @staticmethod
    def _make_filter(safety: Any, announced: dict[str, Any] | None):
        if safety is False or (safety is True and not announced):
            return None
        from vla.serve.safety import SafetyConfig, SafetyFilter

        cfg = SafetyConfig.from_dict(announced) if safety is True else safety
        return SafetyFilter(cfg)

    def _hold(self, obs: dict[str, Any], last_action: np.ndarray | None) -> np.ndarray:
        if self.safety_filter is not None:
            return np.asarray(self.safety_filter.hold_action(np.asarray(obs["state"], np.float32)), np.float32)
        return np.zeros(self.config.action_dim, np.float32)

    def predict_chunk(self, obs: dict[str, Any]) -> np.ndarray:
        """One round trip: float32 [H, A] in robot units (after the server's safety filter)."""
        reply = self.client.infer(obs if self.embodiment is None else {**obs, "embodiment": self.embodiment})
        if reply.get("safety"):
            self.server_safety.append(reply["safety"])
        return np.asarray(reply["actions"], dtype=np.float32)

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        t0 = time.perf_counter()
        rec = self.executor.step(obs)
        action = np.asarray(rec.action, dtype=np.float32)
        active: tuple[str, ...] = ()
        violations: list[str] = []
        if self.safety_filter is not None:
            state = np.asarray(obs["state"], np.float32)
            action, report = self.safety_filter.filter(action, state)
            active = tuple(report.active)
            violations = limit_violations(self.safety_filter.config, action, state)
        self._last_action = action
        self.records.append({"step": rec.step, "kind": rec.kind, "obs_age_steps": rec.obs_age_steps,
                             "watchdog": rec.watchdog, "idle": rec.idle, "safety_active": list(active),
                             "violations": len(violations),
                             "seconds": time.perf_counter() - t0})
        return action

    def reset(self, seed: int | None = None) -> None:
        """Start an episode. ``seed`` is accepted for the Policy interface; a served sampling head draws
        from the server's generator, so a served episode is not reproduced by it."""
        del seed
        self.executor.reset()
        self.client.reset()
        if self.safety_filter is not None:
            self.safety_filter.reset()
        self.records.clear()
        self.server_safety.clear()
        self._last_action = None

    def close(self) -> None:
        self.executor.close()
        self.client.close()
