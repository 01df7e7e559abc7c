"""A policy's normalization: statistics of its training data, the maps into model space, and the way back
to robot units. Stored as normalization.json beside the weights, never inside model.safetensors.

The model sees the state normalized with ``PolicyConfig.state_norm`` and predicts actions normalized
``min_max`` (`vla.data.normalization` modes), both fit to the training dataset's meta/stats.json, i.e. in
that dataset's units. When the dataset was standardized (``vla standardize --normalize ...
--action-mode delta``), its units are not the robot's; its transform (`DatasetTransform`) is then
carried here too, and inference runs the whole chain, so callers only ever see robot units:

- state: robot units -> the dataset's normalization of ``observation.state`` (if any) -> ``state_norm``;
- action: model output -> clipped to [-1, 1] and un-``min_max``-ed (dataset units) -> the dataset's
  un-normalization of ``action`` (if any) -> plus the state on the dataset's delta dims (if any).

Training batches are in the dataset's units (what its files hold), so ``forward`` applies only the
model's own maps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vla.data.errors import DatasetError
from vla.data.normalization import ACTION_KEY, STATE_KEY, DatasetTransform, Normalizer, norm_mode
from vla.data.stats import FeatureStats

ACTION_MODE = "min_max"
FORMAT_VERSION = 2
STATE_FIELDS = ("mean", "std", "min", "max")
ACTION_FIELDS = ("min", "max")


def _arrays(stats: Mapping[str, Any], where: str, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    missing = [f for f in required if f not in stats]
    if missing:
        raise ValueError(f"normalization: {where} lacks {missing} (has {sorted(stats)})")
    out = {}
    for name, value in stats.items():
        if name == "count":
            continue
        try:
            a = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"normalization: {where}.{name} is not a list of numbers") from exc
        if name in required and not np.all(np.isfinite(a)):
            raise ValueError(f"normalization: {where}.{name} has non-finite values")
        out[name] = a
    lengths = {len(out[f]) for f in required}
    if len(lengths) != 1:
        raise ValueError(f"normalization: {where} stats {list(required)} have different lengths")
    return out


@dataclass
class NormalizationStats:
    """State and action statistics (the training dataset's units) and, for a standardized dataset, its
    transform: everything normalization.json holds."""

    state: dict[str, np.ndarray]
    action: dict[str, np.ndarray]
    dataset: DatasetTransform | None = None

    def __post_init__(self) -> None:
        self.state = _arrays(self.state, "state", STATE_FIELDS)
        self.action = _arrays(self.action, "action", ACTION_FIELDS)
        if self.dataset is not None:
            try:
                self.dataset.check_dims(self.state_dim, self.action_dim)
            except DatasetError as exc:  # names the dataset's info.json
                raise ValueError(f"normalization: {exc}") from exc

    @property
    def state_dim(self) -> int:
        return len(self.state["mean"])

    @property
    def action_dim(self) -> int:
        return len(self.action["min"])

    @classmethod
    def from_arrays(cls, state: np.ndarray, action: np.ndarray) -> NormalizationStats:
        """Statistics of stacked samples [N, D] and [N, A] (`vla.data.stats`, as a dataset's writer computes them)."""
        out = []
        for values in (state, action):
            f = FeatureStats()
            f.add(np.asarray(values, dtype=np.float64))
            out.append(f.result())
        return cls(*out)

    @classmethod
    def from_dataset_stats(cls, stats: Mapping[str, Any], dataset: DatasetTransform | None = None,
                           state_key: str = STATE_KEY, action_key: str = ACTION_KEY) -> NormalizationStats:
        """From LeRobot-style meta/stats.json: {key: {"mean", "std", "min", "max", "q01", ...}}."""
        for key in (state_key, action_key):
            if key not in stats:
                raise KeyError(f"normalization: dataset stats have no {key!r} entry (have {sorted(stats)})")
        return cls(dict(stats[state_key]), dict(stats[action_key]), dataset)

    def normalizer(self, state_mode: str) -> Normalizer:
        """The model's maps: the state with `state_mode`, the action ``min_max``."""
        return Normalizer.from_stats({STATE_KEY: norm_mode(state_mode, "state_norm"), ACTION_KEY: ACTION_MODE},
                                     {STATE_KEY: self.state, ACTION_KEY: self.action}, "normalization")

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION,
                "state": {k: v.tolist() for k, v in self.state.items()},
                "action": {k: v.tolist() for k, v in self.action.items()},
                "dataset": self.dataset.to_json() if self.dataset is not None else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NormalizationStats:
        """Read `to_dict`'s output, or the first format ({state: {mean, std, min, max}, action: {min, max}})."""
        if not isinstance(data, Mapping) or not isinstance(data.get("state"), Mapping) \
                or not isinstance(data.get("action"), Mapping):
            raise ValueError("normalization: expected {'state': {...}, 'action': {...}}")
        version = data.get("format_version", 1)
        if version not in (1, FORMAT_VERSION):
            raise ValueError(f"normalization: format_version {version!r} (this vla reads 1 and {FORMAT_VERSION})")
        dataset = DatasetTransform.from_json(data.get("dataset"), "normalization: dataset")
        return cls(dict(data["state"]), dict(data["action"]), dataset)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> NormalizationStats:
        return cls.from_dict(json.loads(text))


class TensorNormalizer(torch.nn.Module):
    """The chain of the module docstring on tensors; its buffers are not persistent (they live in JSON)."""

    def __init__(self, stats: NormalizationStats, state_mode: str = "mean_std") -> None:
        super().__init__()
        self.stats = stats
        model = stats.normalizer(state_mode)
        self.state_mode = model.modes[STATE_KEY]
        t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
        self.register_buffer("state_shift", t(model.center[STATE_KEY]), persistent=False)
        self.register_buffer("state_scale", t(model.scale[STATE_KEY]), persistent=False)
        self.register_buffer("action_shift", t(model.center[ACTION_KEY]), persistent=False)
        self.register_buffer("action_scale", t(model.scale[ACTION_KEY]), persistent=False)
        ds = stats.dataset
        norm = ds.normalizer if ds is not None else None
        self.dataset_modes = dict(norm.modes) if norm is not None else {}
        for key, name, dim in ((STATE_KEY, "data_state", stats.state_dim), (ACTION_KEY, "data_action",
                                                                            stats.action_dim)):
            known = norm is not None and key in norm.center
            self.register_buffer(f"{name}_shift", t(norm.center[key] if known else np.zeros(dim)), persistent=False)
            self.register_buffer(f"{name}_scale", t(norm.scale[key] if known else np.ones(dim)), persistent=False)
        dims = list(ds.delta_dims or []) if ds is not None else []
        self.delta_dims = dims
        self.register_buffer("delta_index", torch.as_tensor(dims, dtype=torch.long), persistent=False)

    # -- training: tensors in the dataset's units ---------------------------------------------------------
    def state(self, x: torch.Tensor) -> torch.Tensor:
        """Dataset-unit state -> model space."""
        y = (x - self.state_shift) / self.state_scale
        return y.clamp(-1.0, 1.0) if self.state_mode == "quantile" else y

    def action(self, x: torch.Tensor) -> torch.Tensor:
        """Dataset-unit actions -> model space ([-1, 1] on the training data)."""
        return (x - self.action_shift) / self.action_scale

    def unaction(self, x: torch.Tensor) -> torch.Tensor:
        """Model-space actions -> the dataset's units (clipped to the training range)."""
        return x.clamp(-1.0, 1.0) * self.action_scale + self.action_shift

    # -- inference: robot units -------------------------------------------------------------------------
    def dataset_state(self, state: torch.Tensor) -> torch.Tensor:
        """Robot-unit state -> the dataset's units (identity for a dataset that is not standardized)."""
        y = (state - self.data_state_shift) / self.data_state_scale
        return y.clamp(-1.0, 1.0) if self.dataset_modes.get(STATE_KEY) == "quantile" else y

    def robot_actions(self, actions: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Dataset-unit actions [B, H, A] -> robot units, given the robot-unit state [B, S] they refer to."""
        a = actions
        if self.dataset_modes.get(ACTION_KEY) is not None:
            if self.dataset_modes[ACTION_KEY] in ("min_max", "quantile"):
                a = a.clamp(-1.0, 1.0)
            a = a * self.data_action_scale + self.data_action_shift
        if self.delta_dims:
            a = a.clone()
            a[..., self.delta_index] += state[:, None, self.delta_index]
        return a

    def delta_reference(self, state: np.ndarray) -> np.ndarray | None:
        """The values a delta action is taken against (state on the delta dims), or None."""
        return np.asarray(state, np.float32)[self.delta_dims] if self.delta_dims else None
