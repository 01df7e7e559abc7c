"""Fault injection for tests and the recall benchmark: one function per finding type.

Each injector takes a clean ``EpisodeArrays``, a numpy Generator, a strength and the dataset's
other episodes (some faults borrow from them) and returns a modified copy. ``FAULTS`` lists, per
finding type, the strengths tried by the benchmark and the documented strength at which the audit
must reach its recall target.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vla.data.audit.episode import EpisodeArrays


@dataclass(frozen=True)
class Fault:
    name: str                     # the finding type it should produce
    inject: Callable[..., EpisodeArrays]
    strengths: tuple[float, ...]
    documented: float
    unit: str
    needs: str = ""               # "images", "state", "gripper", "relation"


def _copy(ep: EpisodeArrays) -> EpisodeArrays:
    return copy.deepcopy(ep)


def _period(ep: EpisodeArrays) -> float:
    d = np.diff(ep.timestamps)
    return float(np.median(d)) if len(d) else 1.0


def _spot(rng: np.random.Generator, n: int, width: int) -> int:
    """A start index leaving a margin of ~10 % at both ends."""
    lo = max(1, n // 10)
    hi = max(lo + 1, n - width - n // 10)
    return int(rng.integers(lo, hi))


def non_monotonic(ep, rng, k, others=None, ctx=None):
    ep = _copy(ep)
    for _ in range(int(k)):
        i = _spot(rng, ep.length, 2)
        ep.timestamps[i], ep.timestamps[i + 1] = ep.timestamps[i + 1], ep.timestamps[i]
    return ep


def duplicate_timestamp(ep, rng, k, others=None, ctx=None):
    ep = _copy(ep)
    for _ in range(int(k)):
        i = _spot(rng, ep.length, 1)
        ep.timestamps[i] = ep.timestamps[i - 1]
    return ep


def jitter(ep, rng, sigma, others=None, ctx=None):
    ep = _copy(ep)
    ep.timestamps = ep.timestamps + rng.normal(0, sigma * _period(ep), ep.length)
    ep.timestamps[0] = max(ep.timestamps[0], 0.0)
    return ep


def rate_mismatch(ep, rng, factor, others=None, ctx=None):
    """Timestamps stretched: recorded at fps / factor but labelled as fps."""
    ep = _copy(ep)
    ep.timestamps = ep.timestamps[0] + (ep.timestamps - ep.timestamps[0]) * factor
    return ep


def _keep_rows(ep: EpisodeArrays, keep: np.ndarray) -> EpisodeArrays:
    ep.timestamps = ep.timestamps[keep]
    if ep.state is not None:
        ep.state = ep.state[keep]
    if ep.action is not None:
        ep.action = ep.action[keep]
    ep.images = {k: v[keep[: len(v)]] if len(v) == len(keep) else v for k, v in ep.images.items()}
    return ep


def gap(ep, rng, k, others=None, ctx=None):
    ep = _copy(ep)
    i = _spot(rng, ep.length, int(k))
    keep = np.ones(ep.length, bool)
    keep[i: i + int(k)] = False
    return _keep_rows(ep, keep)


def stream_offset(ep, rng, k, others=None, ctx=None):
    """Camera late by k frames: picture t shows what happened at t - k."""
    ep = _copy(ep)
    k = int(k)
    for key, v in ep.images.items():
        ep.images[key] = np.concatenate([np.repeat(v[:1], k, axis=0), v[:-k]])
    return ep


def nan_values(ep, rng, k, others=None, ctx=None):
    ep = _copy(ep)
    arr = ep.action if ep.state is None or rng.random() < 0.5 else ep.state
    for _ in range(int(k)):
        arr[rng.integers(0, len(arr)), rng.integers(0, arr.shape[1])] = np.nan
    return ep


def missing_stream(ep, rng, _s, others=None, ctx=None):
    ep = _copy(ep)
    if ep.images:
        key = sorted(ep.images)[0]
        del ep.images[key]
        ep.missing.append(key)
    else:
        ep.state = None
        ep.missing.append("observation.state")
    return ep


def frozen_state(ep, rng, k, others=None, ctx=None):
    ep = _copy(ep)
    i = _spot(rng, ep.length, int(k))
    ep.state[i: i + int(k)] = ep.state[i]
    return ep


def frozen_image(ep, rng, k, others=None, ctx=None):
    ep = _copy(ep)
    k = int(k)
    key = sorted(ep.images)[0]
    th = ep.images[key]
    # put the freeze where the robot moves most, as a stuck camera during motion is what matters
    i = _moving_spot(ep, rng, k)
    th[i: i + k] = th[i]
    return ep


def _moving_spot(ep: EpisodeArrays, rng: np.random.Generator, width: int) -> int:
    if ep.state is None:
        return _spot(rng, ep.length, width)
    v = np.linalg.norm(np.diff(ep.state, axis=0) / (np.diff(ep.state, axis=0).std(axis=0) + 1e-12), axis=1)
    cs = np.convolve(v, np.ones(width), "valid")
    lo = max(1, ep.length // 10)
    cand = np.arange(lo, max(lo + 1, len(cs) - lo))
    cand = cand[cand < len(cs)]
    if len(cand) == 0:
        return _spot(rng, ep.length, width)
    good = cand[cs[cand] >= np.quantile(cs[cand], 0.5)]
    return int(rng.choice(good))


def dropped_frames(ep, rng, k, others=None, ctx=None):
    ep = _copy(ep)
    key = sorted(ep.images)[0]
    th = ep.images[key]
    v = np.linalg.norm(np.diff(ep.state, axis=0) / (np.diff(ep.state, axis=0).std(axis=0) + 1e-12), axis=1) \
        if ep.state is not None else np.ones(ep.length - 1)
    moving = np.flatnonzero(v[1:-1] > np.median(v)) + 2
    idx = rng.choice(moving, size=min(int(k), len(moving)), replace=False) if len(moving) else []
    for i in sorted(idx):
        th[i] = th[i - 1]
    return ep


def frame_count_mismatch(ep, rng, k, others=None, ctx=None):
    ep = _copy(ep)
    key = sorted(ep.images)[0]
    ep.images[key] = ep.images[key][: -int(k)]
    return ep


def inconsistent(ep, rng, frac, others=None, ctx=None):
    """Actions of a window (fraction ``frac`` of the episode) replaced by another episode's."""
    ep = _copy(ep)
    n = ep.length
    w = max(8, int(round(frac * n)))
    i = 0 if w >= n else int(rng.integers(0, n - w + 1))
    pool = [o for o in (others or []) if o.index != ep.index and o.action is not None and len(o.action) >= 2]
    other_task = [o for o in pool if o.tasks != ep.tasks]
    pool = other_task or pool
    src = pool[int(rng.integers(0, len(pool)))].action if pool else ep.action[::-1].copy()
    # resample the donor to the window length
    t = np.linspace(0, len(src) - 1, w)
    donor = np.stack([np.interp(t, np.arange(len(src)), src[:, j]) for j in range(src.shape[1])], axis=1)
    ep.action[i: i + w] = donor[: min(w, n - i)]
    return ep


def outlier(ep, rng, s, others=None, ctx=None):
    """One action value set ``s`` 1-99 % ranges beyond the dataset's 99th percentile."""
    ep = _copy(ep)
    q1, q99 = ctx["action_q"]
    j = int(rng.integers(0, ep.action.shape[1]))
    w = max(q99[j] - q1[j], 1e-3)
    t = int(rng.integers(0, ep.length))
    ep.action[t, j] = (q99[j] + s * w) if rng.random() < 0.5 else (q1[j] - s * w)
    return ep


def gripper_flip_flop(ep, rng, k, others=None, ctx=None):
    ep = _copy(ep)
    j = ctx["gripper_dims"][0]
    lo, hi = ctx["gripper_levels"][j]
    k = int(k)
    i = _spot(rng, ep.length, 2 * k + 2)
    cur = ep.action[i, j]
    vals = [hi, lo] if cur < (lo + hi) / 2 else [lo, hi]
    for n in range(k):
        ep.action[i + 2 * n: i + 2 * n + 2, j] = vals[n % 2]
    return ep


def _busiest(ep: EpisodeArrays, dims: list[int]) -> int:
    """Of the relation-explained dims, the one whose actions vary most in this episode."""
    sd = np.nanstd(ep.action[:, dims], axis=0) / (np.asarray([1.0] * len(dims)))
    return int(dims[int(np.argmax(sd))])


def sign_error(ep, rng, _s, others=None, ctx=None):
    ep = _copy(ep)
    j = _busiest(ep, ctx["explained"])
    ep.action[:, j] = -ep.action[:, j]
    return ep


def scale_error(ep, rng, c, others=None, ctx=None):
    ep = _copy(ep)
    j = _busiest(ep, ctx["explained"])
    ep.action[:, j] = ep.action[:, j] * c
    return ep


def time_shift(ep, rng, k, others=None, ctx=None):
    """Actions late by k frames: action t is the one meant for t - k."""
    ep = _copy(ep)
    k = int(k)
    ep.action = np.concatenate([np.repeat(ep.action[:1], k, axis=0), ep.action[:-k]])
    return ep


def too_short(ep, rng, frac, others=None, ctx=None):
    ep = _copy(ep)
    n = max(2, int(round(frac * ep.length)))
    keep = np.zeros(ep.length, bool)
    keep[:n] = True
    return _keep_rows(ep, keep)


def too_long(ep, rng, factor, others=None, ctx=None):
    """Time-stretched: the same motion recorded ``factor`` times slower (interpolated)."""
    ep = _copy(ep)
    n = ep.length
    m = int(round(n * factor))
    t = np.linspace(0, n - 1, m)
    p = _period(ep)

    def stretch(a):
        return np.stack([np.interp(t, np.arange(n), a[:, j]) for j in range(a.shape[1])], axis=1)

    ep.state = stretch(ep.state) if ep.state is not None else None
    ep.action = stretch(ep.action) if ep.action is not None else None
    ep.images = {k: v[np.round(t).astype(int)] for k, v in ep.images.items()}
    ep.timestamps = ep.timestamps[0] + np.arange(m) * p
    return ep


def missing_instruction(ep, rng, _s, others=None, ctx=None):
    ep = _copy(ep)
    ep.tasks = [] if rng.random() < 0.5 else [""]
    return ep


def duplicate(ep, rng, _s, others=None, ctx=None):
    """Replace the episode by a copy of an earlier one (keeps its own index)."""
    pool = [o for o in (others or []) if o.index < ep.index]
    if not pool:
        return _copy(ep)
    src = _copy(pool[int(rng.integers(0, len(pool)))])
    src.index = ep.index
    return src


FAULTS: dict[str, Fault] = {f.name: f for f in [
    Fault("time.non_monotonic", non_monotonic, (1, 2, 4), 1, "swapped timestamp pairs"),
    Fault("time.duplicate_timestamp", duplicate_timestamp, (1, 2, 4), 1, "repeated timestamps"),
    Fault("time.jitter", jitter, (0.05, 0.1, 0.2), 0.1, "noise std / period"),
    Fault("time.rate_mismatch", rate_mismatch, (1.1, 1.25, 2.0), 1.25, "interval scale"),
    Fault("time.gap", gap, (1, 2, 5), 1, "frames removed"),
    Fault("time.stream_offset", stream_offset, (4, 8, 12), 12, "camera delay (frames)", "images"),
    Fault("modality.nan", nan_values, (1, 5), 1, "NaN values"),
    Fault("modality.missing", missing_stream, (1,), 1, "stream removed"),
    Fault("modality.frozen_state", frozen_state, (5, 10, 20), 10, "frames held", "state"),
    Fault("modality.frozen_image", frozen_image, (5, 10, 20), 10, "frames held", "images"),
    Fault("modality.dropped_frames", dropped_frames, (2, 5, 10), 5, "frames repeated", "images"),
    Fault("modality.frame_count_mismatch", frame_count_mismatch, (1, 5), 1, "camera frames cut", "images"),
    Fault("action.inconsistent", inconsistent, (0.25, 0.5, 1.0), 0.5, "fraction relabelled", "relation"),
    Fault("action.outlier", outlier, (1.5, 3, 10), 3, "1-99% ranges past q99"),
    Fault("action.gripper_flip_flop", gripper_flip_flop, (2, 4, 8), 4, "toggles", "gripper"),
    Fault("action.sign_error", sign_error, (1,), 1, "one dim negated", "relation"),
    Fault("action.scale_error", scale_error, (1.5, 2, 5), 2, "one dim scale", "relation"),
    Fault("action.time_shift", time_shift, (1, 3, 6), 3, "actions late (frames)", "relation"),
    Fault("episode.too_short", too_short, (0.5, 0.25, 0.1), 0.25, "fraction kept"),
    Fault("episode.too_long", too_long, (2, 4, 6), 4, "time stretch"),
    Fault("episode.missing_instruction", missing_instruction, (1,), 1, "instruction removed"),
    Fault("episode.duplicate", duplicate, (1,), 1, "copy of an earlier episode"),
]}


def injection_context(episodes: list[EpisodeArrays]) -> dict:
    """Dataset facts the injectors need (quantiles, gripper dims/levels, explained action dims)."""
    from vla.data.audit import action_checks as ac
    from vla.data.audit.action_model import fit_action_model

    acts = [e.action for e in episodes if e.action is not None]
    X = np.concatenate(acts)
    q1, q99 = np.quantile(X, [0.01, 0.99], axis=0)
    gd = ac.gripper_dims(acts, None, None)
    model = fit_action_model([e.state for e in episodes], [e.action for e in episodes])
    return {"action_q": (q1, q99), "gripper_dims": gd, "gripper_levels": ac.gripper_levels(acts, gd),
            "explained": [j for j in (model.explained if model is not None else [])
                          if model.dims[j].r2 >= ac.TUNING.reliable_r2]}


def applicable(fault: Fault, episodes: list[EpisodeArrays], ctx: dict) -> bool:
    e = episodes[0]
    if fault.needs == "images":
        return bool(e.images) and e.state is not None
    if fault.needs == "state":
        return e.state is not None
    if fault.needs == "gripper":
        return bool(ctx["gripper_dims"])
    if fault.needs == "relation":
        return bool(ctx["explained"])
    return True
