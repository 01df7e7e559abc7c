"""Normalization: the mode names, the `Normalizer` (one affine map per dimension and key), and the record
of what `vla standardize` did to a dataset's state and action, which a policy trained on it undoes.

Modes (LeRobot's, in lower case), ``x_n = (x - center) / scale`` per dimension:

- ``min_max``: center = (max + min) / 2, scale = (max - min) / 2: the data maps onto [-1, 1];
- ``quantile``: center = (q99 + q01) / 2, scale = (q99 - q01) / 2, then clipped to [-1, 1] (values
  outside [q01, q99] do not come back: that is what the clipping is for);
- ``mean_std``: center = mean, scale = std (not bounded).

A dimension with zero spread gets scale 1 (it maps to 0 and comes back exactly). ``unnormalize``
clips the values of a bounded mode (``min_max``, ``quantile``) to [-1, 1] first, so a model's output
never leaves the range of the data the map was fit to; on values that ``normalize`` produced this
changes nothing beyond float rounding. Files written before the names were unified spell
``minmax``/``meanstd``; `norm_mode` reads them.

`DatasetTransform` reads ``info.json["vla"]`` of a standardized dataset: its normalization of
``observation.state`` / ``action`` and its action mode (``delta``: ``action[d] - observation.state[d]``
for the recorded dims). Anything a policy could not undo (an unknown mode, deltas against another
feature, dims that were not recorded) raises `DatasetError` naming info.json and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vla.data.errors import DatasetError

NormMode = Literal["min_max", "mean_std", "quantile"]
NORM_MODES: tuple[str, ...] = ("min_max", "mean_std", "quantile")
BOUNDED = ("min_max", "quantile")
OLD_SPELLINGS = {"minmax": "min_max", "meanstd": "mean_std"}
STATE_KEY = "observation.state"
ACTION_KEY = "action"
ZERO_SPREAD = 1e-12


def norm_mode(name: Any, where: str = "normalization") -> NormMode:
    """The mode `name` names (an older spelling is accepted); ValueError naming `where` otherwise."""
    mode = OLD_SPELLINGS.get(name, name) if isinstance(name, str) else name
    if mode not in NORM_MODES:
        raise ValueError(f"{where}: unknown normalization mode {name!r}; expected one of {', '.join(NORM_MODES)}")
    return mode


def _needed(mode: NormMode) -> tuple[str, str]:
    return {"min_max": ("min", "max"), "quantile": ("q01", "q99"), "mean_std": ("mean", "std")}[mode]


@dataclass
class Normalizer:
    """Per-key, per-dimension affine maps ``x_n = (x - center) / scale`` (see module docstring)."""

    modes: dict[str, NormMode]
    center: dict[str, np.ndarray]
    scale: dict[str, np.ndarray]
    stats: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def from_stats(cls, mode: str | Mapping[str, str], stats: Mapping[str, Mapping[str, Any]],
                   where: str = "normalization") -> Normalizer:
        """Fit to `stats` (LeRobot's {key: {min, max, mean, std, q01, q99, ...}}): one mode for every key
        of `stats`, or a mode per key ({key: mode}, each key must have stats)."""
        modes = ({k: norm_mode(mode, where) for k in stats} if isinstance(mode, str)
                 else {k: norm_mode(m, f"{where}: {k}") for k, m in mode.items()})
        center, scale, kept = {}, {}, {}
        for k, m in modes.items():
            if k not in stats:
                raise ValueError(f"{where}: no statistics of {k!r} (have {sorted(stats)})")
            lo_key, hi_key = _needed(m)
            missing = [s for s in (lo_key, hi_key) if s not in stats[k]]
            if missing:
                raise ValueError(f"{where}: {m} normalization of {k!r} needs {missing} in its statistics "
                                 f"(have {sorted(stats[k])})")
            a = np.asarray(stats[k][lo_key], np.float64).reshape(-1)
            b = np.asarray(stats[k][hi_key], np.float64).reshape(-1)
            if a.shape != b.shape or not (np.isfinite(a).all() and np.isfinite(b).all()):
                raise ValueError(f"{where}: {k!r} statistics {lo_key}/{hi_key} must be finite and of one length")
            c, h = (a, b) if m == "mean_std" else ((b + a) / 2, (b - a) / 2)
            center[k], scale[k] = c, np.where(h > ZERO_SPREAD, h, 1.0)
            kept[k] = {n: np.asarray(v) for n, v in stats[k].items()}
        return cls(modes, center, scale, kept)

    def dims(self, key: str) -> int:
        return int(self.center[key].size)

    def bounded(self, key: str) -> bool:
        return self.modes[key] in BOUNDED

    def _flat(self, key: str, x: np.ndarray) -> np.ndarray:
        a = np.asarray(x, np.float64)
        d = self.dims(key)
        if a.size % d:
            raise ValueError(f"normalization of {key!r}: {d} values per frame expected, got shape {a.shape}")
        return a.reshape(-1, d)

    def normalize(self, key: str, x: np.ndarray) -> np.ndarray:
        """Into normalized units (a key without a map passes through); dtype and shape kept."""
        if key not in self.center:
            return x
        y = (self._flat(key, x) - self.center[key]) / self.scale[key]
        if self.modes[key] == "quantile":
            y = np.clip(y, -1.0, 1.0)
        return y.astype(np.asarray(x).dtype).reshape(np.shape(x))

    def unnormalize(self, key: str, x: np.ndarray) -> np.ndarray:
        """Back to the data's units (a bounded mode's values are clipped to [-1, 1] first)."""
        if key not in self.center:
            return x
        y = self._flat(key, x)
        if self.bounded(key):
            y = np.clip(y, -1.0, 1.0)
        return (y * self.scale[key] + self.center[key]).astype(np.asarray(x).dtype).reshape(np.shape(x))

    def to_json(self) -> dict[str, Any]:
        return {k: {"mode": self.modes[k], "center": self.center[k].tolist(), "scale": self.scale[k].tolist(),
                    "clip": self.modes[k] == "quantile",
                    "stats": {n: np.asarray(v).tolist() for n, v in self.stats.get(k, {}).items()}}
                for k in self.center}

    @classmethod
    def from_json(cls, d: Any, where: str = "normalization") -> Normalizer:
        """Read `to_json`'s output (or the block an older version wrote); ValueError naming `where`."""
        if not isinstance(d, dict) or not d:
            raise ValueError(f"{where}: expected an object of key -> {{mode, center, scale}}, got {d!r:.80}")
        modes, center, scale, stats = {}, {}, {}, {}
        for k, v in d.items():
            if not isinstance(v, dict) or not {"mode", "center", "scale"} <= set(v):
                raise ValueError(f"{where}: {k!r} needs mode, center and scale")
            modes[k] = norm_mode(v["mode"], f"{where}: {k}")
            try:
                center[k] = np.asarray(v["center"], np.float64).reshape(-1)
                scale[k] = np.asarray(v["scale"], np.float64).reshape(-1)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{where}: {k!r} center/scale are not numbers ({e})") from e
            if center[k].shape != scale[k].shape or not (np.isfinite(center[k]).all() and np.isfinite(scale[k]).all()
                                                         and (scale[k] > 0).all()):
                raise ValueError(f"{where}: {k!r} center and scale must be finite, of one length, scale > 0")
            stats[k] = {n: np.asarray(s, np.float64) for n, s in (v.get("stats") or {}).items()}
        return cls(modes, center, scale, stats)


@dataclass
class DatasetTransform:
    """What `vla standardize` did to a dataset's state and action (module docstring); JSON in both the
    dataset's info.json (as written there) and a policy's normalization.json (`to_json`)."""

    normalizer: Normalizer | None = None  # of observation.state and/or action
    delta_dims: list[int] | None = None  # action dims stored as action - observation.state
    source: str = ""  # the info.json it was read from

    @property
    def is_identity(self) -> bool:
        return self.normalizer is None and not self.delta_dims

    @classmethod
    def from_info(cls, info: Mapping[str, Any], path: str | Path) -> DatasetTransform | None:
        """From a dataset's info.json (`path` names it in errors); None when state and action are the robot's."""
        vla = info.get("vla") if isinstance(info, Mapping) else None
        if not isinstance(vla, Mapping):
            return None
        normalizer = None
        block = vla.get("normalization")
        if block:
            used = ({k: v for k, v in block.items() if k in (STATE_KEY, ACTION_KEY)} if isinstance(block, dict)
                    else block)
            if used:
                try:
                    normalizer = Normalizer.from_json(used, "vla.normalization")
                except ValueError as e:
                    raise DatasetError(path, f"{e}: a policy trained on this dataset could not return robot "
                                       "units") from e
        delta = None
        am = vla.get("action_mode")
        if am is not None:
            if not isinstance(am, Mapping):
                raise DatasetError(path, f"vla.action_mode: expected an object, got {am!r:.80}")
            mode = am.get("mode", "absolute")
            if mode == "delta":
                ref = am.get("reference", STATE_KEY)
                if ref != STATE_KEY:
                    raise DatasetError(path, f"vla.action_mode.reference is {ref!r}: a policy can undo deltas only "
                                       f"when they were taken against its state input {STATE_KEY!r}")
                dims = am.get("dims")
                if not isinstance(dims, list) or not dims or not all(isinstance(d, int) and d >= 0 for d in dims):
                    raise DatasetError(path, f"vla.action_mode.dims is {dims!r}: delta actions whose dims are not "
                                       "recorded (a list of action indices) cannot be turned back into robot units")
                delta = sorted(set(dims))
            elif mode != "absolute":
                raise DatasetError(path, f"vla.action_mode.mode is {mode!r}: cannot undo it (expected 'absolute' or "
                                   "'delta')")
        out = cls(normalizer, delta, str(path))
        return None if out.is_identity else out

    def check_dims(self, state_dim: int, action_dim: int) -> None:
        """DatasetError when the record does not fit features of these sizes."""
        want = {STATE_KEY: state_dim, ACTION_KEY: action_dim}
        if self.normalizer is not None:
            for k in self.normalizer.center:
                if self.normalizer.dims(k) != want[k]:
                    raise DatasetError(self.source, f"vla.normalization of {k!r} has {self.normalizer.dims(k)} "
                                       f"dims; the data has {want[k]}")
        bad = [d for d in self.delta_dims or [] if d >= min(state_dim, action_dim)]
        if bad:
            raise DatasetError(self.source, f"vla.action_mode.dims {bad} out of range (action {action_dim}-D, "
                               f"state {state_dim}-D)")

    def to_json(self) -> dict[str, Any]:
        return {"normalization": self.normalizer.to_json() if self.normalizer is not None else None,
                "action_mode": ({"mode": "delta", "dims": list(self.delta_dims), "reference": STATE_KEY}
                                if self.delta_dims else {"mode": "absolute"}),
                "source": self.source}

    @classmethod
    def from_json(cls, d: Any, where: str = "dataset transform") -> DatasetTransform | None:
        if d is None:
            return None
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected an object, got {d!r:.80}")
        try:
            out = cls.from_info({"vla": d}, d.get("source") or where)
        except DatasetError as e:
            raise ValueError(f"{where}: {e.problem}") from e
        return out
