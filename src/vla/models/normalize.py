"""Normalization stats for state and action, and the tensors ops that apply them.

Actions are mapped min-max to [-1, 1]; the state uses mean-std (default) or min-max. Stats travel
with a policy as normalization.json, never inside model.safetensors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

EPS = 1e-6


@dataclass
class NormalizationStats:
    """Per-dimension statistics of the state and action vectors, in robot units."""

    state_mean: np.ndarray
    state_std: np.ndarray
    state_min: np.ndarray
    state_max: np.ndarray
    action_min: np.ndarray
    action_max: np.ndarray

    def __post_init__(self) -> None:
        for name in ("state_mean", "state_std", "state_min", "state_max", "action_min", "action_max"):
            value = np.asarray(getattr(self, name), dtype=np.float32).reshape(-1)
            if not np.all(np.isfinite(value)):
                raise ValueError(f"normalization: {name} has non-finite values")
            setattr(self, name, value)
        if not (len(self.state_mean) == len(self.state_std) == len(self.state_min) == len(self.state_max)):
            raise ValueError("normalization: state stats have different lengths")
        if len(self.action_min) != len(self.action_max):
            raise ValueError("normalization: action_min and action_max have different lengths")

    @property
    def state_dim(self) -> int:
        return len(self.state_mean)

    @property
    def action_dim(self) -> int:
        return len(self.action_min)

    @classmethod
    def from_arrays(cls, state: np.ndarray, action: np.ndarray) -> NormalizationStats:
        """Compute stats from stacked samples [N, D] and [N, A]."""
        state = np.asarray(state, dtype=np.float64)
        action = np.asarray(action, dtype=np.float64)
        return cls(state.mean(0), state.std(0), state.min(0), state.max(0), action.min(0), action.max(0))

    @classmethod
    def from_dataset_stats(cls, stats: Mapping[str, Any], state_key: str = "observation.state",
                           action_key: str = "action") -> NormalizationStats:
        """From LeRobot-style meta/stats.json: {key: {"mean", "std", "min", "max", ...}}."""
        for key, fields in ((state_key, ("mean", "std", "min", "max")), (action_key, ("min", "max"))):
            if key not in stats:
                raise KeyError(f"normalization: dataset stats have no {key!r} entry (have {sorted(stats)})")
            missing = [f for f in fields if f not in stats[key]]
            if missing:
                raise KeyError(f"normalization: stats[{key!r}] lacks {missing}")
        s, a = stats[state_key], stats[action_key]
        return cls(s["mean"], s["std"], s["min"], s["max"], a["min"], a["max"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": {"mean": self.state_mean.tolist(), "std": self.state_std.tolist(),
                      "min": self.state_min.tolist(), "max": self.state_max.tolist()},
            "action": {"min": self.action_min.tolist(), "max": self.action_max.tolist()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NormalizationStats:
        try:
            s, a = data["state"], data["action"]
            return cls(s["mean"], s["std"], s["min"], s["max"], a["min"], a["max"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"normalization: malformed stats, missing {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> NormalizationStats:
        return cls.from_dict(json.loads(text))


class Normalizer(torch.nn.Module):
    """Applies NormalizationStats to tensors; its buffers are not persistent (they live in JSON)."""

    def __init__(self, stats: NormalizationStats, state_mode: str = "mean_std") -> None:
        super().__init__()
        if state_mode not in ("mean_std", "min_max"):
            raise ValueError(f"state normalization mode {state_mode!r}")
        self.stats = stats
        self.state_mode = state_mode
        t = lambda x: torch.as_tensor(x, dtype=torch.float32)  # noqa: E731
        if state_mode == "mean_std":
            self.register_buffer("state_shift", t(stats.state_mean), persistent=False)
            self.register_buffer("state_scale", t(np.maximum(stats.state_std, EPS)), persistent=False)
        else:
            lo, hi = stats.state_min, stats.state_max
            self.register_buffer("state_shift", t((lo + hi) / 2), persistent=False)
            self.register_buffer("state_scale", t(np.maximum((hi - lo) / 2, EPS)), persistent=False)
        lo, hi = stats.action_min, stats.action_max
        self.register_buffer("action_shift", t((lo + hi) / 2), persistent=False)
        self.register_buffer("action_scale", t(np.maximum((hi - lo) / 2, EPS)), persistent=False)

    def state(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.state_shift) / self.state_scale

    def action(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.action_shift) / self.action_scale

    def unaction(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized [-1, 1] actions back to robot units (clipped to the training range)."""
        return x.clamp(-1.0, 1.0) * self.action_scale + self.action_shift
