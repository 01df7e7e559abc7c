"""Standardization: common control rate, time alignment, reversible normalization, action conversions.

Order of operations, applied per episode (`standardize_episode`), then dataset-wide (normalization):

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

import io
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vla.data.formats.episode import TASK_STREAM, ConversionError, SourceEpisode, Stream
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


@dataclass
class AlignedEpisode:
    """Frames on one time base, ready for the writer: arrays [T, ...] (images decoded uint8 HxWx3)."""

    frames: dict[str, np.ndarray]
    tasks: list[str]
    fps: float
    source: dict[str, Any]
    provenance: dict[str, Any]
    timestamps: np.ndarray | None = None  # seconds from the episode start; None = frame_index / fps
    names: dict[str, list[str]] = field(default_factory=dict)  # per-dimension names where the source has them
    videos: dict[str, Any] = field(default_factory=dict)  # copied cameras (VideoSegment), passed through as is

    @property
    def length(self) -> int:
        return len(self.tasks)


# -- resampling ----------------------------------------------------------------------------------


def output_grid(streams: dict[str, Stream], fps: float, offsets: dict[str, float],
                where: str = "episode") -> np.ndarray:
    """Times ``t_0 + k / fps`` covered by every stream (after offsets).

    The grid's length is checked before it is built: at most ``LIMITS.episode_frames`` frames and
    ``LIMITS.grid_per_sample`` frames per sample of the longest stream (two samples a day apart do not
    make a million-frame episode)."""
    if not streams:
        raise ConversionError("episode has no streams to align")
    starts, ends = [], []
    for k, s in streams.items():
        if len(s) == 0:
            raise ConversionError(f"stream {k!r} has no samples in this episode (expected at least one)")
        t = np.asarray(s.timestamps, np.float64) + offsets.get(k, 0.0)
        if not np.all(np.isfinite(t)):
            raise ConversionError(f"{where}: stream {k!r} has a non-finite timestamp (NaN or Inf)")
        starts.append(t[0])
        ends.append(t[-1])
    t0, t1 = max(starts), min(ends)
    if t1 < t0:
        raise ConversionError(f"streams do not overlap in time (latest start {t0:.6f}s > earliest end {t1:.6f}s)")
    from vla.data.limits import check_grid

    samples = max(len(s) for s in streams.values())
    n = check_grid(math.floor((t1 - t0) * fps + 1e-6) + 1, samples, where, "output grid")
    return t0 + np.arange(n, dtype=np.float64) / fps


TIME_TOLERANCE = 1e-4  # s: a sample stamped this close after a grid time counts as at it (float32 stamps)


def earlier_index(t: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Index of the latest sample at or before each grid time, within `TIME_TOLERANCE` (first if none)."""
    idx = np.searchsorted(t, grid + TIME_TOLERANCE, side="right") - 1
    return np.clip(idx, 0, len(t) - 1)


def resample_stream(s: Stream, grid: np.ndarray, offset: float = 0.0) -> Any:
    """Values of one stream on `grid` (see module docstring for the rules)."""
    t = np.asarray(s.timestamps, np.float64) + offset
    order = np.argsort(t, kind="stable")
    if np.any(order != np.arange(len(t))):
        t = t[order]
        s = Stream(t - offset, _take(s.values, order), s.interp, s.hold_dims, s.names, s.encoded)
    idx = earlier_index(t, grid)
    if s.interp != "linear" or not isinstance(s.values, np.ndarray) or s.values.dtype.kind not in "fc":
        return _take(s.values, idx)
    v = s.values
    flat = v.reshape(len(v), -1).astype(np.float64)
    out = np.empty((len(grid), flat.shape[1]), np.float64)
    for d in range(flat.shape[1]):
        out[:, d] = np.interp(grid, t, flat[:, d])
    for d in s.hold_dims:
        out[:, d] = flat[idx, d]
    return out.astype(v.dtype).reshape((len(grid),) + v.shape[1:])


def _take(values: Any, idx: np.ndarray) -> Any:
    if isinstance(values, np.ndarray):
        return values[idx]
    return [values[i] for i in idx]


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Decode JPEG/PNG bytes to uint8 HxWx3."""
    from PIL import Image

    from vla.data.errors import DatasetError
    from vla.data.limits import check_image

    try:
        with Image.open(io.BytesIO(data)) as im:
            check_image(im.size[1], im.size[0], where, "image")
            return np.asarray(im.convert("RGB"))
    except DatasetError:
        raise
    except Exception as e:  # PIL raises several types for corrupt data
        raise ConversionError(f"{where}: cannot decode image ({len(data)} bytes; expected JPEG or PNG): {e}") from e


def align(ep: SourceEpisode, fps: float | None = None, offsets: dict[str, float] | None = None,
          where: str = "episode") -> AlignedEpisode:
    """Put every stream of `ep` on one time base at `fps` (source fps if None) and decode images."""
    offsets = offsets or {}
    unknown = [k for k in offsets if k not in ep.streams]
    if unknown:
        raise ConversionError(f"{where}: --offset for unknown stream(s) {unknown}; streams: {sorted(ep.streams)}")
    target = fps or ep.fps
    if target is None:
        raise ConversionError(f"{where}: the source has no fixed rate; give the output control rate (--fps)")
    # an aligned source without a rate of its own (RLDS) is taken to run at the requested rate
    passthrough = ep.streams_aligned and not offsets and (ep.fps is None or abs(target - ep.fps) < 1e-9)
    tasks = ep.tasks
    if ep.streams_aligned and ep.fps is None:
        ep = SourceEpisode({k: Stream(np.arange(len(s)) / target, s.values, s.interp, s.hold_dims, s.names,
                                      s.encoded) for k, s in ep.streams.items()},
                           ep.tasks, target, ep.source, ep.provenance, True)
    if passthrough:
        n = ep.length
        frames = {k: _take(s.values, np.arange(n)) if not isinstance(s.values, np.ndarray) else s.values[:n]
                  for k, s in ep.streams.items()}
        task_list = [ep.task_at(i) for i in range(n)]
        first = next(iter(ep.streams.values()), None)
        timestamps = (np.asarray(first.timestamps[:n], np.float64) if first is not None
                      else np.arange(n) / target)
    else:
        streams = dict(ep.streams)
        task_stream = None
        if len(tasks) > 1:  # per-frame instructions ride along as a held stream on the first stream's clock
            first = next(iter(streams.values()))
            task_stream = Stream(first.timestamps[: len(tasks)], list(tasks), "hold")
        grid = output_grid({k: s for k, s in streams.items() if k != TASK_STREAM}, target, offsets, where)
        frames = {k: resample_stream(s, grid, offsets.get(k, 0.0)) for k, s in streams.items()}
        n = len(grid)
        if task_stream is not None:
            task_list = list(resample_stream(task_stream, grid))
        else:
            task_list = [tasks[0] if tasks else ""] * n
        timestamps = np.arange(n, dtype=np.float64) / target
    for k, s in ep.streams.items():
        if k == TASK_STREAM:
            continue
        if s.encoded:
            frames[k] = np.stack([decode_image(b, f"{where}, {k}, frame {i}") for i, b in enumerate(frames[k])])
        elif not isinstance(frames[k], np.ndarray):
            frames[k] = np.asarray(frames[k])
    names = {k: s.names for k, s in ep.streams.items() if s.names}
    if TASK_STREAM in frames:
        task_list = [str(t) for t in frames.pop(TASK_STREAM)]
    frames, names = _join_parts(frames, names)
    return AlignedEpisode(frames, task_list, float(target), ep.source, ep.provenance, timestamps, names)


def _join_parts(frames: dict[str, Any], names: dict[str, list[str]]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Concatenate streams ``key#0, key#1, ...`` (several sources of one feature) along the last axis."""
    parts: dict[str, list[str]] = {}
    for k in frames:
        if "#" in k:
            parts.setdefault(k.split("#")[0], []).append(k)
    for key, ks in parts.items():
        ks.sort(key=lambda k: int(k.split("#")[1]))
        arrays = [np.asarray(frames.pop(k)) for k in ks]
        frames[key] = np.concatenate([a.reshape(len(a), -1) for a in arrays], axis=1)
        if all(k in names for k in ks):
            names[key] = [n for k in ks for n in names.pop(k)]
    return frames, names


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


# -- whole datasets -------------------------------------------------------------------------------


def standardize_dataset(src: str | Path, dst: str | Path, config: StandardizeConfig,
                        provenance: str | Path | dict[str, Any] | None = None, progress: Any = None) -> Any:
    """Read a store dataset (ours or LeRobot), standardize every episode, write a new one at `dst`.

    Returns the `ConvertReport`. Provenance stored in `src` is kept; `provenance` adds to it. Cameras keep
    their storage (video or PNG images)."""
    from vla.data.formats.convert import convert_reader
    from vla.data.formats.lerobot import LeRobotReader

    reader = LeRobotReader(Path(src), decode_images=True)
    videos = any(spec.get("dtype") == "video" for spec in reader.info.features.values())
    return convert_reader(reader, Path(dst), provenance=provenance, standardize=config, progress=progress,
                          src=str(src), use_videos=videos)
