"""Recovery from a failure-monitor alarm, robot side: what to execute instead of the policy for a while.

``RecoveryController.act(state, alarm, source)`` is called once per control step with the latest state, the
monitor's latest alarm and the action source (the policy's action queue, behind the ``ActionSource``
protocol); it returns the action to execute and what kind of step it is. Strategies, each started by an
alarm while budget is left (``budget`` recoveries per episode) and no ``cooldown`` is running:

- ``retry``: back off for ``retreat_steps`` steps: up at ``retreat_speed`` and horizontally away from where
  the last policy actions were heading; the gripper opens if it holds nothing (opening below
  ``gripper_empty_below``: closed on air; or already open), else keeps its command; then the queue is
  flushed and the policy queried afresh;
- ``replan``: flush, and take the policy's actions with temporal ensembling (a new chunk every step) for
  ``replan_steps`` steps; then back to the policy's own action selection;
- ``home``: move back to the episode's start position (proportional, ``home_gain``, at most
  ``home_max_steps`` steps or until within ``home_tolerance``), gripper as at the start; flush and resume;
- ``stop``: hold (no motion, the gripper keeps its command) from then on; ``Decision.stop`` is set so the
  caller ends the episode and reports it as stopped.

Every action returned is clipped to [``action_low``, ``action_high``]. State dim ``i`` of ``position_dims`` is
moved by action dim ``i`` (MetaWorld: hand xyz, actions dx dy dz); ``up_dim`` is the vertical one.
numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from vla.errors import VlaError

STRATEGIES = ("retry", "replan", "home", "stop")


class RecoveryError(VlaError, ValueError):
    """A recovery setting is out of range (names it)."""


class ActionSource(Protocol):
    """The policy side a recovery acts on: its next action, its queue, its action selection."""

    def next_action(self) -> np.ndarray: ...

    def flush(self) -> None: ...

    def set_ensembling(self, coeff: float | None) -> None: ...


@dataclass(frozen=True)
class RecoveryConfig:
    strategy: str
    budget: int = 2                      # recoveries per episode
    cooldown: int = 15                   # policy steps after a recovery during which alarms are ignored
    position_dims: tuple[int, ...] = (0, 1, 2)
    up_dim: int = 2
    gripper_state_dim: int | None = 3    # opening, 0 closed .. 1 open (None: no gripper)
    gripper_action_dim: int | None = 3
    gripper_open_action: float = -1.0
    gripper_empty_below: float = 0.35    # MetaWorld: ~0.29 closed on air, ~0.45 around a puck
    gripper_open_above: float = 0.9
    retreat_steps: int = 15
    retreat_speed: float = 0.5
    replan_steps: int = 20
    ensemble_coeff: float = 0.01
    home_max_steps: int = 60
    home_gain: float = 10.0              # action per state unit of distance
    home_tolerance: float = 0.01
    action_low: float = -1.0
    action_high: float = 1.0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise RecoveryError(f"recovery strategy: expected one of {list(STRATEGIES)}, got {self.strategy!r}")
        for name in ("budget", "cooldown"):
            if getattr(self, name) < 0:
                raise RecoveryError(f"recovery {name}: expected >= 0, got {getattr(self, name)}")
        for name in ("retreat_steps", "replan_steps", "home_max_steps"):
            if getattr(self, name) < 1:
                raise RecoveryError(f"recovery {name}: expected >= 1, got {getattr(self, name)}")
        if not self.action_low < self.action_high:
            raise RecoveryError(f"recovery action bounds: expected low < high, got {self.action_low}, "
                                f"{self.action_high}")
        if self.up_dim not in self.position_dims:
            raise RecoveryError(f"recovery up_dim {self.up_dim}: expected one of position_dims {self.position_dims}")


@dataclass(frozen=True)
class Decision:
    action: np.ndarray
    kind: str                 # "policy" or a strategy name
    started: bool = False     # a recovery started at this step
    stop: bool = False        # end the episode (strategy "stop")


@dataclass
class RecoveryController:
    config: RecoveryConfig
    action_dim: int
    used: int = 0
    events: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        c = self.config
        dims = [*c.position_dims] + ([c.gripper_action_dim] if c.gripper_action_dim is not None else [])
        if any(not 0 <= d < self.action_dim for d in dims):
            raise RecoveryError(f"recovery: action dims {dims} out of range for {self.action_dim} action dims")
        self.reset(None)

    def reset(self, start_state: np.ndarray | None) -> None:
        """A new episode starting from ``start_state`` (the pose ``home`` returns to)."""
        self.used, self.events = 0, []
        self._start = None if start_state is None else np.asarray(start_state, np.float64).copy()
        self._phase, self._left, self._cool, self._t = "policy", 0, 0, 0
        self._recent: list[np.ndarray] = []
        self._gripper_cmd = 0.0
        self._away = np.zeros(0)

    @property
    def phase(self) -> str:
        return self._phase

    def _clip(self, a: np.ndarray) -> np.ndarray:
        return np.clip(np.nan_to_num(np.asarray(a, np.float64), nan=0.0), self.config.action_low,
                       self.config.action_high).astype(np.float32)

    def _hold(self) -> np.ndarray:
        a = np.zeros(self.action_dim)
        if self.config.gripper_action_dim is not None:
            a[self.config.gripper_action_dim] = self._gripper_cmd
        return self._clip(a)

    def _holds_nothing(self, state: np.ndarray) -> bool:
        c = self.config
        if c.gripper_state_dim is None or c.gripper_state_dim >= state.size:
            return True
        g = state[c.gripper_state_dim]
        return bool(g < c.gripper_empty_below or g > c.gripper_open_above)

    def _start_recovery(self, state: np.ndarray, source: ActionSource) -> None:
        c = self.config
        self.used += 1
        self.events.append({"step": self._t, "strategy": c.strategy})
        if c.strategy == "stop":
            self._phase = "stop"
        elif c.strategy == "retry":
            self._phase, self._left = "retry", c.retreat_steps
            horizontal = [d for d in c.position_dims if d != c.up_dim]
            heading = np.mean(self._recent, axis=0)[horizontal] if self._recent else np.zeros(len(horizontal))
            norm = float(np.linalg.norm(heading))
            self._away = -heading / norm if norm > 1e-6 else np.zeros(len(horizontal))
            self._open = self._holds_nothing(state)
        elif c.strategy == "replan":
            self._phase, self._left = "replan", c.replan_steps
            source.flush()
            source.set_ensembling(c.ensemble_coeff)
        else:
            self._phase, self._left = "home", c.home_max_steps

    def _resume(self, source: ActionSource) -> None:
        if self._phase == "replan":
            source.set_ensembling(None)
        source.flush()
        self._phase, self._cool = "policy", self.config.cooldown

    def act(self, state: np.ndarray, alarm: bool, source: ActionSource) -> Decision:
        """The action for this step (see module docstring)."""
        c = self.config
        state = np.asarray(state, np.float64).reshape(-1)
        if self._start is None:
            self._start = state.copy()
        started = False
        if self._phase == "policy":
            if self._cool > 0:
                self._cool -= 1
            elif alarm and self.used < c.budget:
                self._start_recovery(state, source)
                started = True
        self._t += 1
        phase = self._phase
        if phase == "policy":
            a = self._clip(source.next_action())
            self._recent = [*self._recent[-4:], a.astype(np.float64)]
            if c.gripper_action_dim is not None:
                self._gripper_cmd = float(a[c.gripper_action_dim])
            return Decision(a, "policy", started)
        if phase == "stop":
            return Decision(self._hold(), "stop", started, stop=True)
        if phase == "replan":
            a = self._clip(source.next_action())
        else:
            a = np.zeros(self.action_dim)
            if c.gripper_action_dim is not None:
                a[c.gripper_action_dim] = self._gripper_cmd
            pos = list(c.position_dims)
            if phase == "retry":
                a[c.up_dim] = c.retreat_speed
                a[[d for d in pos if d != c.up_dim]] = 0.5 * c.retreat_speed * self._away
                if self._open and c.gripper_action_dim is not None:
                    a[c.gripper_action_dim] = c.gripper_open_action
            else:  # home
                err = self._start[pos] - state[pos]
                a[pos] = c.home_gain * err
                g = c.gripper_state_dim
                if g is not None and c.gripper_action_dim is not None and self._start[g] > c.gripper_open_above:
                    a[c.gripper_action_dim] = c.gripper_open_action
                if float(np.linalg.norm(err)) < c.home_tolerance:
                    self._left = 1
            a = self._clip(a)
        self._left -= 1
        if self._left <= 0:
            self._resume(source)
        return Decision(a, phase, started)
