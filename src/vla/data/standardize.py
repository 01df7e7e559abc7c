"""Standardization: common control rate, time alignment, reversible normalization, action conversions.

Steps 1 and 2 (offsets, resampling) are `vla.data.formats.align`, which every converter runs; this module
holds the rest (the plan, the per-frame transforms, the statistics pass). The `vla standardize` entry point
is `vla.data.formats.standardize_run.standardize_dataset`. Nothing here imports the conversion pipeline.

Order of operations, applied per episode, then dataset-wide (normalization):

1. **Latency offsets.** ``offsets[stream] = s`` adds ``s`` seconds to that stream's timestamps before
   alignment: a camera whose frames show the world 50 ms before their stamp gets ``-0.05``.
2. **Resampling** onto the output grid ``t_k = t_0 + k / fps`` where ``t_0`` is the latest first timestamp
   over all streams and the grid stops at the earliest last timestamp (no extrapolation):

   - continuous signals (``interp="linear"``): linear interpolation, per dimension, between the two
     surrounding samples; a grid point that falls on a sample returns that sample exactly;
   - gripper and discrete signals (``interp="hold"``, or ``hold_dims`` of a vector, or the
     ``binarize_gripper`` dim): zero-order hold, the latest sample at or before ``t_k``;
   - images (``interp="image"``): nearest-earlier frame selection, the latest frame at or before ``t_k``
     (a frame is never shown before it was captured; stamps within 0.1 ms count as equal, which absorbs
     float32 timestamps). Encoded frames are decoded only when selected.

   An episode already on a common time base at the requested rate is passed through unchanged.
3. **Gripper binarization** (``binarize_gripper=DIM``): action dim DIM snaps to the nearer of its two
   extremes ``lo``/``hi`` (dataset min/max unless given), threshold ``(lo + hi) / 2`` unless given.
   The result stays in the robot's units. Lossy by nature; recorded in info.json.
4. **Action mode.** ``delta``: ``action[t, d] - observation.state[t, d]`` for the delta dims (default:
   every dim shared by action and state, except the gripper dim); ``absolute``: the inverse,
   ``action[t, d] + observation.state[t, d]``. Exactly invertible given the state.
5. **Normalization** of ``normalize_keys`` (default: action and observation.state) with a
   `vla.data.normalization.Normalizer`: ``min_max`` or ``quantile`` to [-1, 1], or ``mean_std``, one affine
   map per dimension, fit to streaming statistics (`vla.data.stats`) of the data after steps 3 and 4.
   The statistics, center and scale (float64) are stored under ``info.json["vla"]["normalization"]`` so
   `Normalizer.unnormalize` restores robot units to float32 precision (exactly, up to float32 rounding,
   except for clipped quantile outliers); a policy trained on the result undoes steps 4 and 5 itself
   (`vla.data.normalization.DatasetTransform`).

The statistics pass streams: episodes are read once more for it (twice when the gripper extremes come
from the data), never held in memory together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from vla.data.formats.episode import ConversionError
from vla.data.normalization import Normalizer, NormMode, norm_mode
from vla.data.stats import StatsAccumulator

DEFAULT_NORM_KEYS = ("action", "observation.state")
STATE_KEY = "observation.state"
ACTION_KEY = "action"


@dataclass
class StandardizeConfig:
    """What to do to each episode; empty config = pass through unchanged."""

    fps: float | None = None
    offsets: dict[str, float] = field(default_factory=dict)
    normalize: NormMode | None = None
    normalize_keys: tuple[str, ...] = DEFAULT_NORM_KEYS
    action_mode: Literal["absolute", "delta"] | None = None
    delta_dims: list[int] | None = None
    binarize_gripper: int | None = None
    gripper_threshold: float | None = None
    gripper_values: tuple[float, float] | None = None

    def needs_stats(self) -> bool:
        """True when a first pass over the data is needed (normalization or gripper extremes)."""
        return self.normalize is not None or (self.binarize_gripper is not None and self.gripper_values is None)

    def to_json(self) -> dict[str, Any]:
        return {"fps": self.fps, "offsets": dict(self.offsets), "normalize": self.normalize,
                "normalize_keys": list(self.normalize_keys), "action_mode": self.action_mode,
                "delta_dims": self.delta_dims, "binarize_gripper": self.binarize_gripper,
                "gripper_threshold": self.gripper_threshold,
                "gripper_values": list(self.gripper_values) if self.gripper_values else None}


# -- action conversions ---------------------------------------------------------------------------


def binarize(action: np.ndarray, dim: int, lo: float, hi: float, threshold: float | None = None) -> np.ndarray:
    """Snap ``action[:, dim]`` to `lo` or `hi` (threshold: their midpoint unless given)."""
    out = np.array(action, copy=True)
    thr = (lo + hi) / 2 if threshold is None else threshold
    out[:, dim] = np.where(out[:, dim] > thr, hi, lo)
    return out


def default_delta_dims(action_dim: int, state_dim: int, gripper: int | None) -> list[int]:
    return [d for d in range(min(action_dim, state_dim)) if d != gripper]


def to_delta(action: np.ndarray, state: np.ndarray, dims: list[int]) -> np.ndarray:
    out = np.array(action, copy=True)
    out[:, dims] = (action[:, dims].astype(np.float64) - state[:, dims]).astype(action.dtype)
    return out


def to_absolute(action: np.ndarray, state: np.ndarray, dims: list[int]) -> np.ndarray:
    out = np.array(action, copy=True)
    out[:, dims] = (action[:, dims].astype(np.float64) + state[:, dims]).astype(action.dtype)
    return out


@dataclass
class Plan:
    """A config resolved against dataset statistics: everything needed to transform one episode."""

    config: StandardizeConfig
    normalizer: Normalizer | None = None
    gripper: tuple[float, float] | None = None  # (lo, hi)
    delta_dims: list[int] | None = None
    source_action_mode: str = "absolute"

    def info(self) -> dict[str, Any]:
        """Block stored under info.json["vla"] so every transform can be undone or audited."""
        out: dict[str, Any] = {"standardization": self.config.to_json()}
        out["action_mode"] = {"mode": self.config.action_mode or self.source_action_mode,
                              "dims": self.delta_dims, "reference": STATE_KEY}
        if self.gripper is not None:
            out["standardization"]["gripper_values"] = list(self.gripper)
        if self.normalizer is not None:
            out["normalization"] = self.normalizer.to_json()
        return out


def make_plan(config: StandardizeConfig, stats: dict[str, dict[str, np.ndarray]] | None,
              action_dim: int | None, state_dim: int | None, source_action_mode: str = "absolute",
              source_delta_dims: list[int] | None = None) -> Plan:
    """Resolve gripper extremes, delta dims and the normalizer. `stats` are of the pre-normalization data."""
    plan = Plan(config, source_action_mode=source_action_mode)
    g = config.binarize_gripper
    if g is not None:
        if action_dim is None or not 0 <= g < action_dim:
            raise ConversionError(f"--binarize-gripper {g}: action has {action_dim} dims")
        if config.gripper_values is not None:
            plan.gripper = (float(config.gripper_values[0]), float(config.gripper_values[1]))
        else:
            s = (stats or {}).get(ACTION_KEY)
            if s is None:
                raise ConversionError("--binarize-gripper needs action statistics (none were computed)")
            plan.gripper = (float(s["min"][g]), float(s["max"][g]))
    mode = config.action_mode
    if mode is not None and mode != source_action_mode:
        if state_dim is None or action_dim is None:
            raise ConversionError(f"--action-mode {mode}: needs both '{ACTION_KEY}' and '{STATE_KEY}' features")
        if mode == "delta":
            plan.delta_dims = config.delta_dims or default_delta_dims(action_dim, state_dim, g)
        else:
            plan.delta_dims = source_delta_dims or config.delta_dims or default_delta_dims(action_dim, state_dim, g)
        bad = [d for d in plan.delta_dims if not (0 <= d < min(action_dim, state_dim))]
        if bad:
            raise ConversionError(f"delta dims {bad} out of range (action {action_dim}-D, state {state_dim}-D)")
    elif (mode or source_action_mode) == "delta":  # already delta: the dims travel with the data
        plan.delta_dims = source_delta_dims
    if config.normalize is not None:
        if not stats:
            raise ConversionError("normalization needs statistics (none were computed)")
        try:
            plan.normalizer = Normalizer.from_stats(norm_mode(config.normalize, "--normalize"),
                                                    {k: v for k, v in stats.items() if k in config.normalize_keys})
        except ValueError as e:
            raise ConversionError(str(e)) from e
    return plan


def transform(frames: dict[str, np.ndarray], plan: Plan, stage: Literal["pre", "all"] = "all") -> dict[str, np.ndarray]:
    """Apply gripper binarization and action mode ("pre") and then normalization ("all")."""
    out = dict(frames)
    cfg = plan.config
    if ACTION_KEY in out and plan.gripper is not None and cfg.binarize_gripper is not None:
        out[ACTION_KEY] = binarize(out[ACTION_KEY], cfg.binarize_gripper, *plan.gripper, cfg.gripper_threshold)
    if cfg.action_mode is not None and cfg.action_mode != plan.source_action_mode and plan.delta_dims:
        fn = to_delta if cfg.action_mode == "delta" else to_absolute
        out[ACTION_KEY] = fn(out[ACTION_KEY], out[STATE_KEY], plan.delta_dims)
    if stage == "all" and plan.normalizer is not None:
        for k in plan.normalizer.center:
            if k in out:
                out[k] = plan.normalizer.normalize(k, out[k])
    return out


def stats_pass(episodes: Callable[[], Iterable[dict[str, np.ndarray]]], config: StandardizeConfig,
               source_action_mode: str = "absolute", source_delta_dims: list[int] | None = None) -> Plan:
    """Resolve `config` against the data. ``episodes()`` yields the numeric frames (action, state) of every
    episode, afresh at each call: it is called once, or twice when the gripper extremes come from the data
    (raw action extremes fix them; normalization statistics are taken after binarization and action-mode
    conversion, i.e. on what is actually normalized). Memory does not grow with the number of episodes."""
    keys = tuple(dict.fromkeys((ACTION_KEY, STATE_KEY) + tuple(config.normalize_keys)))
    dims: dict[str, int] = {}

    def frames() -> Iterable[dict[str, np.ndarray]]:
        for f in episodes():
            out = {k: np.asarray(f[k], np.float32) for k in keys if k in f}
            for k in (ACTION_KEY, STATE_KEY):
                if k in out:
                    dims.setdefault(k, int(np.prod(out[k].shape[1:]) or 1))
            yield out

    no_norm = StandardizeConfig(**{**config.__dict__, "normalize": None})

    def plan_of(cfg: StandardizeConfig, stats: dict[str, dict[str, np.ndarray]] | None) -> Plan:
        return make_plan(cfg, stats, dims.get(ACTION_KEY), dims.get(STATE_KEY), source_action_mode,
                         source_delta_dims)

    first: Plan | None = None
    if config.binarize_gripper is not None and config.gripper_values is None:
        raw = StatsAccumulator((ACTION_KEY,))
        for f in frames():
            raw.add(f)
        first = plan_of(no_norm, raw.result())
    if config.normalize is None:
        return first if first is not None else plan_of(no_norm, None)
    post = StatsAccumulator(config.normalize_keys)
    for f in frames():
        if first is None:  # the dims are known from the first episode on
            first = plan_of(no_norm, None)
        post.add(transform(f, first, "pre"))
    if first is None:
        raise ConversionError("normalization needs statistics: no episodes to compute them on")
    final = StandardizeConfig(**{**config.__dict__, "gripper_values": first.gripper})
    plan = plan_of(final, post.result())
    plan.config = config
    return plan
