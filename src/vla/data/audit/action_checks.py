"""Action findings: inconsistent with the following states, sign/scale error in one dimension,
actions shifted in time, outliers beyond robust bounds, gripper flip-flop.

The relation-based checks use the dataset's ``ActionModel``. Per episode and explained dimension
they compute the residual normalised by the dataset's typical residual (1 = a clean episode), the
slope gamma of the actions against the prediction (1 clean, -1 a sign flip, c a scale error) and
the alignment shift that fits best (0 clean). ``relation_stats`` returns these numbers;
``peer_thresholds`` sets thresholds from the spread of an episode's peers; ``check_relation`` turns
the numbers into findings in three steps: dims with a sign or scale slip (``sign_scale_dims``), a
time shift (``shift_verdict``), then actions that disagree with the states (``inconsistency``).
A time shift is judged on the joint lag of all reliable dims against the peers' lags, and, where
the peers have two usual joint lags, on the dims whose own lag every peer shares (``dim_shift``).
Every number these checks are tuned by is a field of ``ActionTuning``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla.data.audit.action_model import ActionModel
from vla.data.audit.episode import EpisodeArrays
from vla.data.audit.findings import Finding, make_finding
from vla.data.audit.runs import mad, merge_ranges, runs


@dataclass(frozen=True)
class ActionTuning:
    """The tuning of the action checks (values set on the audit benchmark, docs/results.md)."""

    # relation statistics
    shift_search: int = 8             # frames tried either way when looking for a time shift
    min_frames: int = 8               # frames an episode (and finite residuals a dim) needs to be judged
    window_divisor: int = 8           # rolling window = max(min_frames, length // this)
    # thresholds from the peers
    resid_floor: float = 2.0          # normalized residual above which an episode is inconsistent (minimum)
    roll_floor: float = 3.0           # same for the worst rolling window
    threshold_factor: float = 3.0     # thresholds = this x the peers' median episode (never below the floors)
    min_ref_peers: int = 3            # peers needed for a per-dim reference value or a coherence threshold
    # sign / scale slips
    gamma_bounds: tuple[float, float] = (0.5, 1.6)  # slope outside -> sign/scale candidate
    gain: float = 0.7                 # ... when rescaling by the slope cuts the residual below 70 %
    fixed_resid: float = 1.6          # ... and after undoing the slope the dim looks clean
    typical_factor: float = 1.5       # (clean: within this x the median residual of the reliable dims)
    min_slope: float = 0.25           # below this the dim is unrelated (inconsistent), not mis-scaled
    strong_gain: float = 0.35         # ... or undoing the slope removes most of the residual
    peer_gres_factor: float = 2.0     # ... or its slope-corrected residual / |slope| is within 2x its peers'
    sign_scale_min_resid: float = 1.8  # ... and the residual is clearly above a clean episode's
    min_peer_slope: float = 0.3       # a slope is taken relative to the peers' only above this
    uniform_slope_ratio: float = 1.25  # several dims off by one factor (within this ratio): one slip
    reliable_r2: float = 0.8          # dims fitted at least this well drive sign/scale/shift/combined checks
    # time shift, joint lag
    shift_gain: float = 0.75          # shifting must cut the joint residual below 75 %
    shift_min_resid: float = 0.3      # ... of an episode whose residual is above a clean one's
    min_shift_frames: int = 2         # ... by at least this many frames (no peers: judged against 0)
    min_lag_peers: int = 4            # with this many peers the lag is judged against theirs instead of 0:
    shift_min_dev: float = 1.5        # ... at least this many frames from the peers' median lag,
    lag_tol: float = 1.0              # ... with fewer than lag_usual_frac of the peers within lag_tol frames
    lag_usual_frac: float = 0.15      # (tasks can have two usual lags)
    shift_peer_gain: float = 0.9      # ... and a residual below 90 % of the one at the peers' lag
    shift_strong_gain: float = 0.5    # (below 50 %: flagged even when peers share the lag)
    # time shift, dim by dim
    dim_lag_peers: int = 8            # per-dim lags are judged with this many peers, on dims whose peers'
    dim_lag_tight: float = 0.35       # lags spread less than this (robust sd, frames): shifted when
    dim_lag_z: float = 6.0            # this many spreads (and shift_min_dev frames) from their median, where
    dim_lag_gain: float = 0.97        # the dim fits better than at the peers' lag (contact-heavy dims fit
    #                                   every alignment nearly as badly, so the bar is lower than shift_peer_gain)
    # coherence (1 - correlation of actions with the predictions)
    coherence_factor: float = 2.5     # inconsistent when 1 - correlation > this x the peers' median ...
    coherence_floor: float = 0.15     # ... and above this
    lockstep_factor: float = 2.0      # residual-only findings need 1 - correlation above 2x the peers' median
    lockstep_min: float = 0.01        # ... and above this
    coherence_mode_peers: int = 15    # with this many peers also above coherence_mode_margin x their
    coherence_mode_quantile: float = 0.85  # 85th percentile (with 15 the 85th percentile lies below the top
    coherence_mode_margin: float = 1.25    # 2 peers: two mislabelled peers cannot raise it to their own level)
    # outliers and gripper
    outlier_margin: float = 1.5       # bounds = [q0.5 - m*w, q99.5 + m*w], w = q99 - q1 (1.0 flagged real peak
    #                                   actions of a lift demo once a few of the windows that hold them were cut)
    flip_min_short: int = 2           # short gripper segments (dwell < flip_dwell s) that make a flip-flop
    flip_dwell: float = 0.15


TUNING = ActionTuning()


@dataclass
class DimStats:
    j: int
    resid: float        # whole-episode RMS residual / dataset residual
    roll: float         # worst rolling-window RMS residual / dataset residual
    roll_at: tuple[int, int]
    gamma: float        # slope of actions vs prediction (centered)
    gamma_resid: float  # residual after rescaling by gamma
    shift: int          # best alignment shift (frames); - = actions late (they fit earlier states' motion)
    shift_resid: float
    shift_curve: np.ndarray | None = None  # RMS residual per shift -shift_search..shift_search (same frames)
    # centered co-moments of actions and predictions per shift (same frames, in units of the dim's
    # typical residual): sxy[shift], sxx[shift], syy[shift]; pooled over dims they give ``coherence``
    moments: np.ndarray | None = None


def _rms(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.sqrt((x**2).mean())) if x.size else np.nan


def _center(curve: np.ndarray) -> int:
    """Index of shift 0 in a residual curve over -search..search."""
    return (len(curve) - 1) // 2


def _predictions(model: ActionModel, s: np.ndarray, n: int, shift: int) -> dict[int, np.ndarray]:
    """Predicted a_j for every explained dim, dims sharing (mode, lag) computed in one product."""
    groups: dict[tuple[str, int], list[int]] = {}
    for j in model.explained:
        d = model.dims[j]
        groups.setdefault((d.mode, d.lag), []).append(j)
    out = {}
    for (mode, lag), dims in groups.items():
        X = model.features(s, mode, lag - shift, n)
        W = np.stack([model.dims[j].w for j in dims], axis=1)
        b = np.array([model.dims[j].b for j in dims])
        P = X @ W + b
        if model.plausible is not None:
            lo, hi = model.plausible[0][dims], model.plausible[1][dims]
            with np.errstate(invalid="ignore"):
                P[(P < lo) | (P > hi)] = np.nan
        for k, j in enumerate(dims):
            out[j] = P[:, k]
    return out


def relation_stats(ep: EpisodeArrays, model: ActionModel, tuning: ActionTuning = TUNING) -> list[DimStats]:
    t = tuning
    s, a = ep.state, ep.action
    if s is None or a is None or len(a) < t.min_frames or len(s) < t.min_frames:
        return []
    out = []
    n = len(a)
    search = range(-t.shift_search, t.shift_search + 1)
    win = max(t.min_frames, n // t.window_divisor)
    shifted = {sh: _predictions(model, s, n, -sh) for sh in search}
    trim_all = slice(t.shift_search, n - t.shift_search) if n > 3 * t.shift_search else slice(0, n)
    for j in model.explained:
        d = model.dims[j]
        p = shifted[0][j]
        r = (a[:, j] - p) / d.resid
        ok = np.isfinite(r)
        if ok.sum() < t.min_frames:
            continue
        rr = np.where(ok, r**2, 0.0)
        cnt = np.convolve(ok.astype(float), np.ones(win), "valid")
        roll = np.sqrt(np.convolve(rr, np.ones(win), "valid") / np.maximum(cnt, 1))
        roll[cnt < win / 2] = 0
        k = int(np.argmax(roll))
        pc = p[ok] - p[ok].mean()
        ac = a[ok, j] - a[ok, j].mean()
        vp = float((pc**2).sum())
        gamma = float((pc * ac).sum() / vp) if vp > 1e-12 else 1.0
        g_res = _rms((ac - gamma * pc) / d.resid)
        # residual per alignment shift, on the same frames: those every shift can predict (the ends
        # where some shift runs out of states are dropped; the first frames hold the motion onset)
        both = np.isfinite(a[:, j])
        for sh in search:
            both &= np.isfinite(shifted[sh][j])
        trim = both if both.sum() >= t.min_frames else trim_all
        curve = np.array([_rms(((a[:, j] - shifted[sh][j]) / d.resid)[trim]) for sh in search])
        k_best = int(np.nanargmin(curve)) if np.isfinite(curve).any() else t.shift_search
        base = curve[t.shift_search]
        mom = np.zeros((len(search), 3))
        for i, sh in enumerate(search):
            x, y = a[trim, j] / d.resid, shifted[sh][j][trim] / d.resid
            m = np.isfinite(x) & np.isfinite(y)
            if m.sum() > 3:
                x, y = x[m] - x[m].mean(), y[m] - y[m].mean()
                mom[i] = (x * y).sum(), (x * x).sum(), (y * y).sum()
        out.append(DimStats(j, _rms(r), float(roll[k]), (k, k + win), gamma, g_res, k_best - t.shift_search,
                            float(curve[k_best] / base * _rms(r)) if base > 0 else float(curve[k_best]), curve,
                            mom))
    return out


@dataclass
class RelationThresholds:
    resid: float = TUNING.resid_floor  # on the combined (RMS over reliable dims) whole-episode residual
    roll: float = TUNING.roll_floor    # on the combined worst-window residual
    gamma_ref: dict[int, float] = field(default_factory=dict)  # usual slope per dim among peers
    gres_ref: dict[int, float] = field(default_factory=dict)   # usual slope-corrected residual per dim
    resid_ref: dict[int, float] = field(default_factory=dict)  # usual residual per dim among peers
    lags: list[float] | None = None   # best joint alignment lag (frames) of each peer episode
    dim_lags: dict[int, list[float]] = field(default_factory=dict)  # per dim: each peer's own best lag
    coherence: float | None = None    # threshold on ``coherence`` (None: not used)
    coherence_med: float | None = None  # the peers' median ``coherence``


@dataclass(frozen=True)
class RelationSummary:
    """What ``peer_thresholds`` needs from one episode: its relation stats and, over its reliable
    dims, the combined residuals, coherence, joint lag and each dim's own lag."""

    stats: list[DimStats]
    combined: tuple[float, float]
    coherence: float | None
    joint_lag: float | None
    dim_lags: dict[int, float]


def summarize_relation(stats: list[DimStats], model: ActionModel,
                       tuning: ActionTuning = TUNING) -> RelationSummary | None:
    """The episode's summary for its peers' thresholds (None without relation stats)."""
    if not stats:
        return None
    good = reliable(stats, model, tuning)
    js = joint_shift(good)
    return RelationSummary(stats, combined(good), coherence(good), js[0] if js is not None else None,
                           dim_lags(stats, model, tuning))


def peer_thresholds(peers: list[RelationSummary], tuning: ActionTuning = TUNING) -> RelationThresholds:
    """Thresholds and reference values for the episodes whose peers these are."""
    t = tuning
    th = RelationThresholds(resid=t.resid_floor, roll=t.roll_floor)
    if peers:
        # threshold_factor x the median episode: robust to up to half the episodes being bad
        th.resid = max(t.resid_floor, t.threshold_factor * float(np.median([p.combined[0] for p in peers])))
        th.roll = max(t.roll_floor, t.threshold_factor * float(np.median([p.combined[1] for p in peers])))
    gam: dict[int, list[float]] = {}
    gres: dict[int, list[float]] = {}
    res: dict[int, list[float]] = {}
    for p in peers:
        for d in p.stats:
            gam.setdefault(d.j, []).append(d.gamma)
            gres.setdefault(d.j, []).append(d.gamma_resid)
            res.setdefault(d.j, []).append(d.resid)
    th.gamma_ref = {j: float(np.median(v)) for j, v in gam.items() if len(v) >= t.min_ref_peers}
    th.gres_ref = {j: float(np.median(v)) for j, v in gres.items() if len(v) >= t.min_ref_peers}
    th.resid_ref = {j: float(np.median(v)) for j, v in res.items() if len(v) >= t.min_ref_peers}
    th.lags = [p.joint_lag for p in peers if p.joint_lag is not None]
    for p in peers:
        for j, lag in p.dim_lags.items():
            th.dim_lags.setdefault(j, []).append(lag)
    cs = [p.coherence for p in peers if p.coherence is not None]
    if len(cs) >= t.min_ref_peers:
        th.coherence_med = float(np.median(cs))
        th.coherence = max(t.coherence_floor, t.coherence_factor * float(np.median(cs)))
        if len(cs) >= t.coherence_mode_peers:
            # enough peers to see a task's second mode (e.g. demos that fight a door): a level
            # shared by the top ~15 % of the task is a way of doing it, not a mislabel
            top = float(np.quantile(cs, t.coherence_mode_quantile))
            th.coherence = max(th.coherence, t.coherence_mode_margin * top)
    return th


def coherence(stats: list[DimStats]) -> float | None:
    """1 - the best (over alignment shifts) pooled correlation of actions with the predictions of the
    given dims (each in units of its typical residual, so moving dims dominate). Scale-free: a
    contact that slows the hand barely moves it, actions taken from another episode raise it."""
    moms = [d.moments for d in stats if d.moments is not None]
    if not moms:
        return None
    m = np.sum(moms, axis=0)
    den = np.sqrt(m[:, 1] * m[:, 2])
    ok = den > 1e-12
    if not ok.any():
        return None
    return float(1.0 - np.max(m[ok, 0] / den[ok]))


def joint_shift(stats: list[DimStats]) -> tuple[float, np.ndarray] | None:
    """Best joint alignment (frames, sub-frame by a parabola through the minimum; - = actions late)
    and the joint residual curve over shifts -search..search."""
    curves = [d.shift_curve for d in stats if d.shift_curve is not None and np.isfinite(d.shift_curve).all()]
    if not curves:
        return None
    joint = np.sqrt(np.mean(np.stack(curves) ** 2, axis=0))
    k = int(np.argmin(joint))
    return k - _center(joint) + (_parabola_offset(joint, k) if 0 < k < len(joint) - 1 else 0.0), joint


def _parabola_offset(curve: np.ndarray, k: int) -> float:
    """Sub-frame offset (within +/-0.5) of the minimum of a parabola through curve[k-1:k+2]."""
    a, b, c = curve[k - 1], curve[k], curve[k + 1]
    den = a - 2 * b + c
    return float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den > 0 else 0.0


def _sub_frame(curve: np.ndarray | None) -> float | None:
    """Shift (frames) at the minimum of a residual curve over -search..search, refined by a parabola;
    None when the minimum lies on the search edge (no alignment fits) or the curve has gaps."""
    if curve is None or not np.isfinite(curve).all():
        return None
    k = int(np.argmin(curve))
    return k - _center(curve) + _parabola_offset(curve, k) if 0 < k < len(curve) - 1 else None


def dim_lags(stats: list[DimStats], model: ActionModel, tuning: ActionTuning = TUNING) -> dict[int, float]:
    """Best alignment lag of each reliable dim on its own (dims whose minimum is interior)."""
    out = {}
    for d in reliable(stats, model, tuning):
        lag = _sub_frame(d.shift_curve)
        if lag is not None:
            out[d.j] = lag
    return out


def reliable(stats: list[DimStats], model: ActionModel, tuning: ActionTuning = TUNING) -> list[DimStats]:
    good = [d for d in stats if model.dims[d.j] is not None and model.dims[d.j].r2 >= tuning.reliable_r2]
    return good or stats


def combined(stats: list[DimStats]) -> tuple[float, float]:
    """RMS over dims of the whole-episode and worst-window residuals."""
    return (float(np.sqrt(np.mean([d.resid**2 for d in stats]))),
            float(np.sqrt(np.mean([d.roll**2 for d in stats]))))


def _curve_at(curve: np.ndarray, lag: float) -> float:
    """A residual curve over -search..search read at a (fractional) lag."""
    return float(np.interp(lag + _center(curve), np.arange(len(curve)), curve))


def dim_shift(good: list[DimStats], th: RelationThresholds, tuning: ActionTuning = TUNING) -> tuple[int, str] | None:
    """A shift seen dim by dim, on the dims whose own lag is nearly the same in every peer ("tight"):
    every tight dim moved the same way, far from its peers' lag in units of their spread, to a lag
    no cluster of peers shares, and fits clearly better there."""
    t = tuning
    moved: list[tuple[int, float, float]] = []
    tight = 0
    for d in good:
        lag = _sub_frame(d.shift_curve)
        peers = list(th.dim_lags.get(d.j, []))
        if lag is None or len(peers) < t.dim_lag_peers:
            continue
        if lag in peers:
            peers.remove(lag)      # the episode itself
        ref = float(np.median(peers))
        spread = mad(peers)
        if spread > t.dim_lag_tight:
            continue
        tight += 1
        near = sum(abs(x - lag) <= t.lag_tol for x in peers)
        if abs(lag - ref) < max(t.shift_min_dev, t.dim_lag_z * spread) or \
                near >= max(1, t.lag_usual_frac * len(peers)):
            return None
        r0 = _curve_at(d.shift_curve, ref)
        gain = d.shift_curve.min() / r0 if r0 > 0 else np.inf
        if not gain < t.dim_lag_gain:
            return None
        moved.append((d.j, lag - ref, gain))
    if not moved or len(moved) < tight or len({np.sign(m[1]) for m in moved}) > 1:
        return None
    sh = int(round(float(np.median([m[1] for m in moved]))))
    how = ", ".join(f"dim {j}: {dev:+.1f} frames from its peers' lag, residual {g:.2f}x" for j, dev, g in moved[:3])
    return (sh, how) if sh != 0 else None


def _dim_label(j: int, names: list[str] | None) -> str:
    return f"{j} ({names[j]})" if names and j < len(names) else str(j)


def relative_slope(d: DimStats, th: RelationThresholds, tuning: ActionTuning = TUNING) -> float:
    """The dim's slope relative to its peers' usual slope (its own slope when theirs is small)."""
    ref = th.gamma_ref.get(d.j, 1.0)
    return d.gamma / ref if ref > tuning.min_peer_slope else d.gamma


def usual_resid(d: DimStats, th: RelationThresholds, tuning: ActionTuning = TUNING) -> float:
    """What the dim's residual usually is among the episode's peers (a clean episode: 1)."""
    return max(tuning.fixed_resid, tuning.peer_gres_factor * th.resid_ref.get(d.j, 0.0))


def undone_residual(d: DimStats, action: np.ndarray, preds: dict[int, np.ndarray], model: ActionModel,
                    th: RelationThresholds, tuning: ActionTuning = TUNING) -> float:
    """Residual after dividing the dim's actions by its slope relative to its peers: a dim scaled by
    c (or negated) looks like a clean episode again, a dim partly relabelled or replaced does not
    (dividing by a slope < 1 blows the foreign part up)."""
    c = relative_slope(d, th, tuning)
    if abs(c) < 1e-6 or d.j not in preds:
        return np.inf
    # a negative slope is also undone by a plain negation (a sign slip; contact frames bias the
    # fitted slope of a negated dim away from -1)
    return min(_rms((action[:, d.j] / x - preds[d.j]) / model.dims[d.j].resid) for x in ((c, -1.0) if c < 0 else (c,)))


def undone_clean(d: DimStats, th: RelationThresholds, typical: float, tuning: ActionTuning = TUNING) -> bool:
    """Without peers' residuals: whether undoing the slope leaves the dim as clean as usual. A dim
    scaled by c has its slope-corrected residual scaled by |c| too: undo that and compare with what
    the dim's slope-corrected residual usually is among the episode's peers."""
    t = tuning
    c = max(1.0, abs(relative_slope(d, th, t)))
    usual = max(t.fixed_resid, t.peer_gres_factor * th.gres_ref.get(d.j, 0.0))
    return d.gamma_resid <= typical * max(1.0, abs(d.gamma)) or d.gamma_resid <= t.strong_gain * d.resid \
        or d.gamma_resid / c <= usual


def sign_scale_dims(ep: EpisodeArrays, good: list[DimStats], th: RelationThresholds, model: ActionModel,
                    tuning: ActionTuning = TUNING) -> tuple[list[DimStats], list[DimStats]]:
    """(off, dev): the reliable dims whose slope is far from their peers' with a residual above a
    clean episode's, and those of them that undoing the slope makes clean (a sign or scale slip)."""
    t = tuning
    off = [d for d in good if not (t.gamma_bounds[0] <= relative_slope(d, th, t) <= t.gamma_bounds[1])
           and d.resid >= t.sign_scale_min_resid]
    if th.resid_ref:
        # a dim scaled by c has its residual scaled by |c| after the slope is undone: compare the
        # undone residual with what the dim's residual usually is among its peers (contact-heavy
        # tasks keep a large residual that a slope cannot remove, so "the slope fit cuts the
        # residual" is not required)
        cands = [d for d in off if abs(d.gamma) >= t.min_slope and d.j in th.resid_ref]
        preds = _predictions(model, ep.state, ep.length, 0) if cands else {}
        dev = [d for d in cands if (u := undone_residual(d, ep.action, preds, model, th, t)) <= t.gain * d.resid
               and u <= usual_resid(d, th, t)]
    else:
        typical = max(t.fixed_resid, t.typical_factor * float(np.median([d.resid for d in good])))
        dev = [d for d in off if d.gamma_resid <= t.gain * d.resid and abs(d.gamma) >= t.min_slope
               and undone_clean(d, th, typical, t)]
    gs = [d.gamma for d in dev]
    uniform = len(dev) > 1 and min(gs) > 0 and max(gs) / min(gs) < t.uniform_slope_ratio
    if len(dev) > 1 and not uniform:
        dev = []          # several dims off in different ways: mislabelled actions, not a sign/scale slip
    return off, dev


def _shift_against_peers(lag: float, joint: np.ndarray, k: int, lags: list[float],
                         tuning: ActionTuning) -> tuple[bool, int, float]:
    """(hit, shift, residual at the usual lag) judged against the peers' joint lags: the usual lag
    of a task is not always 0 (controller delays, contact-dominated motion), and some tasks have
    more than one usual lag."""
    t = tuning
    ref = float(np.median(lags))
    r0 = _curve_at(joint, ref)
    others = list(lags)
    if lag in others:
        others.remove(lag)     # the episode itself
    near = sum(abs(x - lag) <= t.lag_tol for x in others)
    lag_is_usual = near >= max(1, t.lag_usual_frac * len(others))
    # a lag shared by a cluster of peers is one of the task's usual lags unless moving back to the
    # median lag makes the fit much worse (then the cluster is shifted episodes)
    gain = joint[k] / r0 if r0 > 0 else 1.0
    hit = abs(lag - ref) >= t.shift_min_dev and (gain < t.shift_strong_gain or
                                                 (not lag_is_usual and gain < t.shift_peer_gain))
    return hit, int(round(lag - ref)), r0


def _shift_against_zero(joint: np.ndarray, k: int, tuning: ActionTuning) -> tuple[bool, int, float]:
    """(hit, shift, residual at lag 0) without enough peers: judged against the usual alignment 0."""
    sh = k - _center(joint)
    base = joint[_center(joint)]
    return abs(sh) >= tuning.min_shift_frames and base > tuning.shift_min_resid and \
        joint[k] < tuning.shift_gain * base, sh, base


def shift_verdict(ep: EpisodeArrays, good: list[DimStats], th: RelationThresholds,
                  tuning: ActionTuning = TUNING) -> tuple[Finding | None, tuple[int, str] | None]:
    """(a time-shift finding from the joint lag, else the weaker dim-by-dim shift evidence)."""
    js = joint_shift(good)
    if js is None:
        return None, None
    lag, joint = js
    k = int(np.argmin(joint))
    if th.lags is not None and len(th.lags) >= tuning.min_lag_peers:
        hit, sh, base = _shift_against_peers(lag, joint, k, th.lags, tuning)
    else:
        hit, sh, base = _shift_against_zero(joint, k, tuning)
    # a real shift has an interior minimum that fits about as well as a clean episode; actions
    # unrelated to the states slide the minimum to the end of the search instead
    hit = hit and 0 < k < len(joint) - 1 and joint[k] <= th.resid
    # ... and at the best alignment the actions move with the states as well as the peers' do
    # (actions taken from another episode can fit slightly better at some shift, but stay
    # incoherent at every shift)
    coh_all = coherence(good)
    incoherent = th.coherence is not None and coh_all is not None and coh_all > th.coherence
    if hit and not incoherent and sh != 0:
        return _shift_finding(ep, sh, f"residual {base:.1f}x -> {joint[k]:.1f}x"), None
    # the joint lag can stay among the peers' usual lags (a task with two of them: a shifted episode
    # of the late kind lands on the early one); a dim whose own lag is the same in every peer still
    # shows the shift. Weaker evidence: reported only when the actions do not disagree with the
    # states outright (``check_relation``)
    return None, (dim_shift(good, th, tuning) if not incoherent else None)


def sign_scale_findings(ep: EpisodeArrays, dev: list[DimStats], names: list[str] | None) -> list[Finding]:
    """One sign or scale finding per slipped dim."""
    out = []
    for d in dev:
        if d.gamma < 0:
            out.append(make_finding("action.sign_error", ep.index, (0, ep.length),
                                    f"action dim {_dim_label(d.j, names)} has the opposite sign of what the states "
                                    f"imply (slope {d.gamma:.2f})", ep.timestamps, dim=d.j, gamma=d.gamma))
        else:
            out.append(make_finding("action.scale_error", ep.index, (0, ep.length),
                                    f"action dim {_dim_label(d.j, names)} is {d.gamma:.2f}x what the states imply",
                                    ep.timestamps, dim=d.j, gamma=d.gamma))
    return out


def inconsistency(ep: EpisodeArrays, rest: list[DimStats], slope_off: list[DimStats], th: RelationThresholds,
                  names: list[str] | None, tuning: ActionTuning = TUNING) -> Finding | None:
    """``action.inconsistent`` when the dims not explained by a slip disagree with the states."""
    t = tuning
    resid, roll = combined(rest)
    coh = coherence(rest)
    # a residual above the peers' with the actions still moving in lockstep with the states
    # (correlation as high as a typical peer's) is a fit that does not reach that part of the
    # motion (rest, an unusual pose), not a relabelling
    lockstep = coh is not None and th.coherence_med is not None and \
        coh <= max(t.lockstep_min, t.lockstep_factor * th.coherence_med)
    if not (((resid > th.resid or roll > th.roll) and not lockstep) or slope_off or
            (th.coherence is not None and coh is not None and coh > th.coherence)):
        return None
    worst = max(rest, key=lambda d: d.roll)
    frames = (0, ep.length) if resid > th.resid else worst.roll_at
    return make_finding("action.inconsistent", ep.index, frames,
                        f"actions disagree with the following states (dims "
                        f"{', '.join(_dim_label(d.j, names) for d in rest[:4])}: residual {resid:.1f}x, worst "
                        f"window {roll:.1f}x a clean episode's, correlation {1 - (coh or 0):.2f}"
                        + "".join(f"; dim {_dim_label(d.j, names)} slope {relative_slope(d, th, t):.2f}x its peers'"
                                  for d in slope_off[:2]) + ")", ep.timestamps,
                        dims=[d.j for d in rest], resid=resid, roll=roll, coherence=coh,
                        slope_off=[d.j for d in slope_off])


def check_relation(ep: EpisodeArrays, stats: list[DimStats], th: RelationThresholds, model: ActionModel,
                   names: list[str] | None = None, tuning: ActionTuning = TUNING) -> list[Finding]:
    """Classify deviations from the dataset's relation into shift, sign, scale or inconsistent."""
    if not stats:
        return []
    good = reliable(stats, model, tuning)
    off, dev = sign_scale_dims(ep, good, th, model, tuning)
    # dims whose slope is far from their peers', with a residual clearly above their peers', that
    # undoing the slope does not make clean: the actions of those dims do not belong to the states
    slope_off = [d for d in off if d not in dev and th.resid_ref and d.resid > usual_resid(d, th, tuning)]
    # a time shift moves every reliable dimension the same way: pick it jointly (unless one dim is
    # clearly sign-flipped or mis-scaled: such a dim drags the joint curve toward the search edge)
    dim_moved: tuple[int, str] | None = None
    if not dev:
        shift, dim_moved = shift_verdict(ep, good, th, tuning)
        if shift is not None:
            return [shift]
    out = sign_scale_findings(ep, dev, names)
    flagged = {d.j for d in dev}
    rest = [d for d in good if d.j not in flagged]
    if rest:
        found = inconsistency(ep, rest, slope_off, th, names, tuning)
        if found is not None:
            out.append(found)
    if dim_moved is not None and not out:
        out.append(_shift_finding(ep, *dim_moved))
    return out


def _shift_finding(ep: EpisodeArrays, sh: int, how: str) -> Finding:
    side = "late" if sh < 0 else "early"   # negative: actions match earlier state motion
    return make_finding("action.time_shift", ep.index, (0, ep.length),
                        f"actions fit the states best when moved {abs(sh)} frame(s) from the usual alignment: "
                        f"they are {side} relative to the states ({how})", ep.timestamps, shift_frames=sh)


def action_bounds(actions: list[np.ndarray],
                  tuning: ActionTuning = TUNING) -> tuple[np.ndarray, np.ndarray] | None:
    """Robust per-dimension bounds from the pooled actions of the dataset."""
    a = [x for x in actions if x is not None and len(x)]
    if not a:
        return None
    # every episode weighs the same: a few very long (or time-stretched) episodes must not
    # redefine the range and turn a motion the other episodes share into an outlier
    wt = np.concatenate([np.full(len(x), 1.0 / len(x)) for x in a])
    X = np.concatenate(a)
    ok = np.isfinite(X).all(axis=1)
    X, wt = X[ok], wt[ok]
    if len(X) < 10:
        return None
    q = np.stack([_weighted_quantiles(X[:, j], wt, [0.005, 0.01, 0.99, 0.995]) for j in range(X.shape[1])], axis=1)
    w = q[2] - q[1]
    w = np.where(w > 1e-9, w, np.maximum(0.1 * np.abs(q[1]), 1e-3))
    return q[0] - tuning.outlier_margin * w, q[3] + tuning.outlier_margin * w


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, qs: list[float]) -> np.ndarray:
    """Quantiles of x under weights w (inverse of the weighted CDF, midpoint convention)."""
    o = np.argsort(x)
    x, w = x[o], w[o]
    c = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(qs, c, x)


def check_outliers(ep: EpisodeArrays, bounds: tuple[np.ndarray, np.ndarray] | None) -> list[Finding]:
    if bounds is None or ep.action is None:
        return []
    lo, hi = bounds
    a = ep.action
    with np.errstate(invalid="ignore"):
        bad = (a < lo) | (a > hi)
    rows = bad.any(axis=1)
    out = []
    for r0, r1 in merge_ranges(runs(rows), slack=3):
        dims = sorted(set(np.flatnonzero(bad[r0:r1].any(axis=0)).tolist()))
        j = dims[0]
        v = a[r0:r1, j][bad[r0:r1, j]]
        out.append(make_finding("action.outlier", ep.index, (r0, r1),
                                f"action dim(s) {dims[:6]} outside robust bounds (e.g. {float(v[0]):.3g} "
                                f"vs [{lo[j]:.3g}, {hi[j]:.3g}])", ep.timestamps, dims=dims))
    return out


def gripper_dims(actions: list[np.ndarray], declared: list[int] | None, names: list[str] | None) -> list[int]:
    """Declared gripper dims, else dims named like a gripper, else near-binary dims."""
    if declared:
        return list(declared)
    if names:
        found = [i for i, n in enumerate(names) if "grip" in str(n).lower()]
        if found:
            return found
    a = [x for x in actions if x is not None and len(x)]
    if not a:
        return []
    X = np.concatenate(a)
    X = X[np.isfinite(X).all(axis=1)]
    out = []
    for j in range(X.shape[1]):
        lo, hi = np.quantile(X[:, j], [0.02, 0.98])
        if hi - lo < 1e-6:
            continue
        edge = 0.1 * (hi - lo)
        near = (np.abs(X[:, j] - lo) < edge) | (np.abs(X[:, j] - hi) < edge)
        if near.mean() > 0.9 and (np.abs(X[:, j] - hi) < edge).mean() > 0.03 and \
                (np.abs(X[:, j] - lo) < edge).mean() > 0.03:
            out.append(j)
    return out


def check_gripper(ep: EpisodeArrays, dims: list[int], levels: dict[int, tuple[float, float]],
                  fps: float, tuning: ActionTuning = TUNING) -> list[Finding]:
    """Repeated open/close toggles with very short dwell times."""
    if ep.action is None:
        return []
    out = []
    dwell = max(3, int(round(tuning.flip_dwell * fps)))
    for j in dims:
        if j >= ep.action.shape[1] or j not in levels:
            continue
        lo, hi = levels[j]
        mid, band = (lo + hi) / 2, 0.25 * (hi - lo)
        x = ep.action[:, j]
        state, changes = 0, []
        for t, v in enumerate(x):
            if not np.isfinite(v):
                continue
            new = 1 if v > mid + band else (-1 if v < mid - band else state)
            if state != 0 and new != state:
                changes.append(t)
            state = new
        if len(changes) < tuning.flip_min_short + 1:
            continue
        seg = np.diff(changes)
        short = seg < dwell
        for r0, r1 in runs(short):
            if r1 - r0 >= tuning.flip_min_short:
                a, b = changes[r0], changes[r1] + 1
                out.append(make_finding("action.gripper_flip_flop", ep.index, (a - 1, b),
                                        f"gripper dim {j} toggles {r1 - r0 + 1} times within {b - a} frames",
                                        ep.timestamps, dim=j, toggles=r1 - r0 + 1))
    return out


def gripper_levels(actions: list[np.ndarray], dims: list[int]) -> dict[int, tuple[float, float]]:
    a = [x for x in actions if x is not None and len(x)]
    if not a:
        return {}
    X = np.concatenate(a)
    out = {}
    for j in dims:
        v = X[:, j][np.isfinite(X[:, j])]
        if v.size:
            lo, hi = np.quantile(v, [0.05, 0.95])
            if hi - lo > 1e-9:
                out[j] = (float(lo), float(hi))
    return out
