"""Modality findings: missing streams, NaN values, frozen state or camera, dropped frames, count mismatch.

A stream is *frozen* when it stops changing while the rest of the robot keeps moving: the state
repeats exactly while the commanded action varies, or a camera repeats the same picture while
the state moves. Short repeats (1 to FROZEN_MIN-1 frames) of a camera while the state moves are
*dropped frames* (the recorder duplicated the previous picture to fill the slot).
"""

from __future__ import annotations

import numpy as np

from vla.data.audit.episode import EpisodeArrays
from vla.data.audit.findings import Finding, make_finding
from vla.data.audit.runs import merge_ranges, runs
from vla.data.audit.time_checks import motion_energy, state_speed

FROZEN_MIN = 5          # frames: a repeat at least this long is a frozen stream
IMAGE_STILL = 0.01      # gray levels (thumbnail mean abs diff) under which two pictures are "the same"
EXPECT_MIN = 4 * IMAGE_STILL  # expected motion energy above which a repeat is suspicious
REPEAT_RARE = 0.002     # dataset state repeat rate below which any FROZEN_MIN-frame repeat is frozen
DROPPED_MIN = 2         # isolated repeats needed in an episode to report dropped frames


def check_missing(ep: EpisodeArrays) -> list[Finding]:
    return [make_finding("modality.missing", ep.index, None, f"stream {key} is absent for this episode",
                         stream=key) for key in ep.missing]


def check_nan(ep: EpisodeArrays) -> list[Finding]:
    out = []
    for name, arr in (("observation.state", ep.state), ("action", ep.action)):
        if arr is None or arr.size == 0:
            continue
        bad = ~np.isfinite(arr)
        rows = bad.any(axis=1)
        for a, b in merge_ranges(runs(rows), slack=2):
            dims = sorted(set(np.flatnonzero(bad[a:b].any(axis=0)).tolist()))
            out.append(make_finding("modality.nan", ep.index, (a, b),
                                    f"{name} has {int(bad[a:b].sum())} NaN/inf value(s) in dim(s) {dims[:6]}",
                                    ep.timestamps, stream=name, dims=dims))
    return out


def check_frame_counts(ep: EpisodeArrays) -> list[Finding]:
    out = []
    for key, th in ep.images.items():
        if len(th) != ep.length:
            out.append(make_finding("modality.frame_count_mismatch", ep.index, None,
                                    f"camera {key.split('.')[-1]} has {len(th)} frames, the table {ep.length}",
                                    camera=key, camera_frames=len(th), table_frames=ep.length))
    return out


def state_repeat_rate(states: list[np.ndarray | None]) -> float:
    """Median over episodes of the fraction of consecutive frames whose state repeats exactly (a
    simulator or a noisy sensor never repeats; an idle robot with coarse encoders does)."""
    rates = [float(np.all(np.diff(s, axis=0) == 0, axis=1).mean()) for s in states
             if s is not None and len(s) > 1]
    return float(np.median(rates)) if rates else 1.0


def check_frozen_state(ep: EpisodeArrays, action_scale: np.ndarray | None,
                       repeat_rate: float = 1.0) -> list[Finding]:
    """State exactly repeated for >= FROZEN_MIN frames while the action keeps changing, or at all
    when the dataset's states otherwise never repeat (``repeat_rate`` below REPEAT_RARE)."""
    s, a = ep.state, ep.action
    if s is None or len(s) < FROZEN_MIN + 1:
        return []
    same = np.all(np.diff(s, axis=0) == 0, axis=1)  # same[t]: s[t+1] == s[t]
    out = []
    for r0, r1 in runs(same):
        n = r1 - r0 + 1  # frames sharing the value
        if n < FROZEN_MIN:
            continue
        moving = True
        never = repeat_rate < REPEAT_RARE
        if never:
            pass  # a stream that never repeats elsewhere has stopped updating here
        elif a is not None and len(a) >= r1 + 1:
            seg = a[r0: r1 + 1]
            scale = action_scale if action_scale is not None else np.nanstd(a, axis=0)
            scale = np.where(scale > 1e-12, scale, np.inf)
            moving = bool(np.nanmax(np.nanstd(seg, axis=0) / scale) > 0.05)
        if not moving and ep.images:
            th = next(iter(ep.images.values()))
            moving = len(th) > r1 and float(motion_energy(th[r0: r1 + 1]).mean()) > IMAGE_STILL * 4
        if moving:
            out.append(make_finding("modality.frozen_state", ep.index, (r0, r1 + 1),
                                    f"state identical for {n} frames while the robot is commanded to move"
                                    if not never else f"state identical for {n} frames (states of this "
                                    f"dataset otherwise never repeat exactly)",
                                    ep.timestamps))
    return out


def motion_gain(episodes: list[EpisodeArrays], state_scale: np.ndarray | None,
                dims: list[int] | None = None) -> float:
    """Dataset-wide image motion per unit of state speed (median ratio over moving frames)."""
    ratios = []
    for ep in episodes:
        if ep.state is None or not ep.images or not np.isfinite(ep.state).all() or len(ep.state) < 3:
            continue
        s = ep.state if not dims else ep.state[:, dims]
        v = state_speed(s, None if state_scale is None else (state_scale if not dims else state_scale[dims]))
        for th in ep.images.values():
            m = motion_energy(th)
            n = min(len(m), len(v))
            ok = (v[:n] > 0) & (m[:n] > IMAGE_STILL)
            ratios.append(m[:n][ok] / v[:n][ok])
    r = np.concatenate(ratios) if ratios else np.zeros(0)
    return float(np.median(r)) if r.size else 0.0


def _moving_mask(ep: EpisodeArrays, n: int, state_scale: np.ndarray | None, gain: float,
                 dims: list[int] | None = None) -> np.ndarray:
    """moving[t]: the state moves enough between t and t+1 that the picture should change visibly
    (expected motion energy, from the dataset's gain, at least EXPECT_MIN)."""
    if ep.state is None or len(ep.state) < 2 or not np.isfinite(ep.state).any():
        return np.zeros(n, bool)
    s = np.nan_to_num(ep.state if not dims else ep.state[:, dims])
    v = state_speed(s, None if state_scale is None else (state_scale if not dims else state_scale[dims]))[:n]
    if gain > 0:
        mv = gain * v >= EXPECT_MIN
    else:
        ref = np.median(v[v > 0]) if (v > 0).any() else 0.0
        mv = v > 0.3 * ref if ref > 0 else np.zeros(len(v), bool)
    return np.pad(mv, (0, n - len(mv)))


def check_frozen_images(ep: EpisodeArrays, state_scale: np.ndarray | None, gain: float = 0.0,
                        dims: list[int] | None = None) -> list[Finding]:
    """Repeated pictures while the state moves: long runs -> frozen, isolated ones -> dropped frames."""
    out = []
    for key, th in ep.images.items():
        if len(th) < 3:
            continue
        m = motion_energy(th)                       # m[t]: change between t and t+1
        moving = _moving_mask(ep, len(m), state_scale, gain, dims)
        still = m <= IMAGE_STILL
        cam = key.split(".")[-1]
        dropped: list[tuple[int, int]] = []
        for r0, r1 in runs(still):
            if moving[r0:r1].mean() < 0.5:
                continue
            n = r1 - r0 + 1
            if r1 - r0 >= FROZEN_MIN - 1:
                out.append(make_finding("modality.frozen_image", ep.index, (r0, r1 + 1),
                                        f"camera {cam} shows the same picture for {n} frames while the "
                                        f"state moves", ep.timestamps, camera=key))
            else:
                dropped.append((r0 + 1, r1 + 1))
        repeats = sum(b - a for a, b in dropped)
        if repeats >= DROPPED_MIN:
            out.append(make_finding("modality.dropped_frames", ep.index, (dropped[0][0], dropped[-1][1]),
                                    f"camera {cam} repeats the previous picture at {repeats} frame(s) while "
                                    f"the state moves (frames dropped by the recorder)", ep.timestamps,
                                    camera=key, repeated_frames=[a for a, _ in dropped][:50]))
    return out
