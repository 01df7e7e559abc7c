"""Action findings: inconsistent with the following states, sign/scale error in one dimension,
actions shifted in time, outliers beyond robust bounds, gripper flip-flop.

The relation-based checks use the dataset's ``ActionModel``. Per episode and explained dimension
they compute the residual normalised by the dataset's typical residual (1 = a clean episode), the
slope gamma of the actions against the prediction (1 clean, -1 a sign flip, c a scale error) and
the alignment shift that fits best (0 clean). ``relation_stats`` returns these numbers;
``check_relation`` turns them into findings with thresholds set from the dataset's own spread.
A time shift is judged on the joint lag of all reliable dims against the peers' lags, and, where
the peers have two usual joint lags, on the dims whose own lag every peer shares (``dim_shift``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla.data.audit.action_model import ActionModel
from vla.data.audit.episode import EpisodeArrays
from vla.data.audit.findings import Finding, make_finding
from vla.data.audit.runs import mad, merge_ranges, runs

SHIFT_SEARCH = 8          # frames tried either way when looking for a time shift
RESID_FLOOR = 2.0         # normalized residual above which an episode is inconsistent (minimum)
ROLL_FLOOR = 3.0          # same for the worst rolling window
THRESHOLD_FACTOR = 3.0    # thresholds = this x the dataset's median episode (never below the floors)
OUTLIER_MARGIN = 1.5      # bounds = [q0.5 - m*w, q99.5 + m*w], w = q99 - q1 (1.0 flagged real peak actions of
#                           a lift demo once a few of the windows that hold them were cut short)
FLIP_MIN_SHORT = 2        # short gripper segments (dwell < FLIP_DWELL s) that make a flip-flop
FLIP_DWELL = 0.15


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
    shift_curve: np.ndarray | None = None  # RMS residual per shift -SHIFT_SEARCH..SHIFT_SEARCH (same frames)
    # centered co-moments of actions and predictions per shift (same frames, in units of the dim's
    # typical residual): sxy[shift], sxx[shift], syy[shift]; pooled over dims they give ``coherence``
    moments: np.ndarray | None = None


def _rms(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.sqrt((x**2).mean())) if x.size else np.nan


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


def relation_stats(ep: EpisodeArrays, model: ActionModel) -> list[DimStats]:
    s, a = ep.state, ep.action
    if s is None or a is None or len(a) < 8 or len(s) < 8:
        return []
    out = []
    n = len(a)
    win = max(8, n // 8)
    shifted = {sh: _predictions(model, s, n, -sh) for sh in range(-SHIFT_SEARCH, SHIFT_SEARCH + 1)}
    trim_all = slice(SHIFT_SEARCH, n - SHIFT_SEARCH) if n > 3 * SHIFT_SEARCH else slice(0, n)
    for j in model.explained:
        d = model.dims[j]
        p = shifted[0][j]
        r = (a[:, j] - p) / d.resid
        ok = np.isfinite(r)
        if ok.sum() < 8:
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
        for sh in range(-SHIFT_SEARCH, SHIFT_SEARCH + 1):
            both &= np.isfinite(shifted[sh][j])
        trim = both if both.sum() >= 8 else trim_all
        curve = np.array([_rms(((a[:, j] - shifted[sh][j]) / d.resid)[trim])
                          for sh in range(-SHIFT_SEARCH, SHIFT_SEARCH + 1)])
        k_best = int(np.nanargmin(curve)) if np.isfinite(curve).any() else SHIFT_SEARCH
        base = curve[SHIFT_SEARCH]
        mom = np.zeros((2 * SHIFT_SEARCH + 1, 3))
        for i, sh in enumerate(range(-SHIFT_SEARCH, SHIFT_SEARCH + 1)):
            x, y = a[trim, j] / d.resid, shifted[sh][j][trim] / d.resid
            m = np.isfinite(x) & np.isfinite(y)
            if m.sum() > 3:
                x, y = x[m] - x[m].mean(), y[m] - y[m].mean()
                mom[i] = (x * y).sum(), (x * x).sum(), (y * y).sum()
        out.append(DimStats(j, _rms(r), float(roll[k]), (k, k + win), gamma, g_res, k_best - SHIFT_SEARCH,
                            float(curve[k_best] / base * _rms(r)) if base > 0 else float(curve[k_best]), curve,
                            mom))
    return out


@dataclass
class RelationThresholds:
    resid: float = RESID_FLOOR     # on the combined (RMS over reliable dims) whole-episode residual
    roll: float = ROLL_FLOOR       # on the combined worst-window residual
    gamma_ref: dict[int, float] = field(default_factory=dict)  # usual slope per dim among peers
    gres_ref: dict[int, float] = field(default_factory=dict)   # usual slope-corrected residual per dim
    resid_ref: dict[int, float] = field(default_factory=dict)  # usual residual per dim among peers
    lags: list[float] | None = None   # best joint alignment lag (frames) of each peer episode
    dim_lags: dict[int, list[float]] = field(default_factory=dict)  # per dim: each peer's own best lag
    coherence: float | None = None    # threshold on ``coherence`` (None: not used)
    coherence_med: float | None = None  # the peers' median ``coherence``


GAMMA_BOUNDS = (0.5, 1.6)         # slope outside -> sign/scale candidate
GAIN = 0.7                        # ... when rescaling by the slope cuts the residual below 70 %
FIXED_RESID = 1.6                 # ... and after undoing the slope the dim looks clean
MIN_SLOPE = 0.25                  # below this the dim is unrelated (inconsistent), not mis-scaled
STRONG_GAIN = 0.35                # ... or undoing the slope removes most of the residual
PEER_GRES_FACTOR = 2.0           # ... or its slope-corrected residual / |slope| is within 2x its peers'
SIGN_SCALE_MIN_RESID = 1.8        # ... and the residual is clearly above a clean episode's
RELIABLE_R2 = 0.8                 # dims fitted at least this well drive sign/scale/shift/combined checks
SHIFT_GAIN = 0.75                 # shifting must cut the joint residual below 75 %
SHIFT_MIN_RESID = 0.3             # ... of an episode whose residual is above a clean one's
MIN_LAG_PEERS = 4                 # with this many peers the lag is judged against theirs instead of 0:
SHIFT_MIN_DEV = 1.5               # ... at least this many frames from the peers' median lag,
LAG_TOL = 1.0                     # ... with fewer than LAG_USUAL_FRAC of the peers within LAG_TOL frames
LAG_USUAL_FRAC = 0.15             # (tasks can have two usual lags)
SHIFT_PEER_GAIN = 0.9             # ... and a residual below 90 % of the one at the peers' lag
SHIFT_STRONG_GAIN = 0.5           # (below 50 %: flagged even when peers share the lag)
DIM_LAG_PEERS = 8                 # per-dim lags are judged with this many peers, on dims whose peers'
DIM_LAG_TIGHT = 0.35              # lags spread less than this (robust sd, frames): shifted when
DIM_LAG_Z = 6.0                   # this many spreads (and SHIFT_MIN_DEV frames) from their median, where
DIM_LAG_GAIN = 0.97               # the dim fits better than at the peers' lag (contact-heavy dims fit
#                                   every alignment nearly as badly, so the bar is lower than SHIFT_PEER_GAIN)
COHERENCE_FACTOR = 2.5            # inconsistent when 1 - correlation > this x the peers' median ...
COHERENCE_FLOOR = 0.15            # ... and above this
LOCKSTEP_FACTOR = 2.0             # residual-only findings need 1 - correlation above 2x the peers' median
LOCKSTEP_MIN = 0.01               # ... and above this
COHERENCE_MODE_PEERS = 15         # with this many peers also above COHERENCE_MODE_MARGIN x their 85th percentile
#                                   (with 15 the 85th percentile lies below the top 2 peers: two
#                                   mislabelled peers cannot raise it to their own level)
COHERENCE_MODE_MARGIN = 1.25


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
    and the joint residual curve over shifts -SHIFT_SEARCH..SHIFT_SEARCH."""
    curves = [d.shift_curve for d in stats if d.shift_curve is not None and np.isfinite(d.shift_curve).all()]
    if not curves:
        return None
    joint = np.sqrt(np.mean(np.stack(curves) ** 2, axis=0))
    k = int(np.argmin(joint))
    return k - SHIFT_SEARCH + (_parabola_offset(joint, k) if 0 < k < len(joint) - 1 else 0.0), joint


def _parabola_offset(curve: np.ndarray, k: int) -> float:
    """Sub-frame offset (within +/-0.5) of the minimum of a parabola through curve[k-1:k+2]."""
    a, b, c = curve[k - 1], curve[k], curve[k + 1]
    den = a - 2 * b + c
    return float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den > 0 else 0.0


def _sub_frame(curve: np.ndarray | None) -> float | None:
    """Shift (frames) at the minimum of a residual curve over -SHIFT_SEARCH..SHIFT_SEARCH, refined by a
    parabola; None when the minimum lies on the search edge (no alignment fits) or the curve has gaps."""
    if curve is None or not np.isfinite(curve).all():
        return None
    k = int(np.argmin(curve))
    return k - SHIFT_SEARCH + _parabola_offset(curve, k) if 0 < k < len(curve) - 1 else None


def dim_lags(stats: list[DimStats], model: ActionModel) -> dict[int, float]:
    """Best alignment lag of each reliable dim on its own (dims whose minimum is interior)."""
    out = {}
    for d in reliable(stats, model):
        lag = _sub_frame(d.shift_curve)
        if lag is not None:
            out[d.j] = lag
    return out


def reliable(stats: list[DimStats], model: ActionModel) -> list[DimStats]:
    good = [d for d in stats if model.dims[d.j] is not None and model.dims[d.j].r2 >= RELIABLE_R2]
    return good or stats


def combined(stats: list[DimStats]) -> tuple[float, float]:
    """RMS over dims of the whole-episode and worst-window residuals."""
    return (float(np.sqrt(np.mean([d.resid**2 for d in stats]))),
            float(np.sqrt(np.mean([d.roll**2 for d in stats]))))


def dim_shift(good: list[DimStats], th: RelationThresholds) -> tuple[int, str] | None:
    """A shift seen dim by dim, on the dims whose own lag is nearly the same in every peer ("tight"):
    every tight dim moved the same way, far from its peers' lag in units of their spread, to a lag
    no cluster of peers shares, and fits clearly better there."""
    moved: list[tuple[int, float, float]] = []
    tight = 0
    for d in good:
        lag = _sub_frame(d.shift_curve)
        peers = list(th.dim_lags.get(d.j, []))
        if lag is None or len(peers) < DIM_LAG_PEERS:
            continue
        if lag in peers:
            peers.remove(lag)      # the episode itself
        ref = float(np.median(peers))
        spread = mad(peers)
        if spread > DIM_LAG_TIGHT:
            continue
        tight += 1
        near = sum(abs(x - lag) <= LAG_TOL for x in peers)
        if abs(lag - ref) < max(SHIFT_MIN_DEV, DIM_LAG_Z * spread) or near >= max(1, LAG_USUAL_FRAC * len(peers)):
            return None
        r0 = float(np.interp(ref + SHIFT_SEARCH, np.arange(len(d.shift_curve)), d.shift_curve))
        gain = d.shift_curve.min() / r0 if r0 > 0 else np.inf
        if not gain < DIM_LAG_GAIN:
            return None
        moved.append((d.j, lag - ref, gain))
    if not moved or len(moved) < tight or len({np.sign(m[1]) for m in moved}) > 1:
        return None
    sh = int(round(float(np.median([m[1] for m in moved]))))
    how = ", ".join(f"dim {j}: {dev:+.1f} frames from its peers' lag, residual {g:.2f}x" for j, dev, g in moved[:3])
    return (sh, how) if sh != 0 else None


def check_relation(ep: EpisodeArrays, stats: list[DimStats], th: RelationThresholds, model: ActionModel,
                   names: list[str] | None = None) -> list[Finding]:
    """Classify deviations from the dataset's relation into shift, sign, scale or inconsistent."""
    if not stats:
        return []

    def nm(j: int) -> str:
        return f"{j} ({names[j]})" if names and j < len(names) else str(j)

    out: list[Finding] = []
    ts, n = ep.timestamps, ep.length
    good = reliable(stats, model)
    typical = max(FIXED_RESID, 1.5 * float(np.median([d.resid for d in good])))

    def rel_gamma(d: DimStats) -> float:
        ref = th.gamma_ref.get(d.j, 1.0)
        return d.gamma / ref if ref > 0.3 else d.gamma

    def undone_clean(d: DimStats) -> bool:
        # a dim scaled by c has its slope-corrected residual scaled by |c| too: undo that and compare
        # with what the dim's slope-corrected residual usually is among the episode's peers
        c = max(1.0, abs(rel_gamma(d)))
        usual = max(FIXED_RESID, PEER_GRES_FACTOR * th.gres_ref.get(d.j, 0.0))
        return d.gamma_resid <= typical * max(1.0, abs(d.gamma)) or d.gamma_resid <= STRONG_GAIN * d.resid \
            or d.gamma_resid / c <= usual

    def usual_resid(d: DimStats) -> float:
        """What the dim's residual usually is among the episode's peers (a clean episode: 1)."""
        return max(FIXED_RESID, PEER_GRES_FACTOR * th.resid_ref.get(d.j, 0.0))

    preds: dict[int, np.ndarray] | None = None

    def undone(d: DimStats) -> float:
        """Residual after dividing the dim's actions by its slope relative to its peers: a dim
        scaled by c (or negated) looks like a clean episode again, a dim partly relabelled or
        replaced does not (dividing by a slope < 1 blows the foreign part up)."""
        nonlocal preds
        if preds is None:
            preds = _predictions(model, ep.state, n, 0)
        c = rel_gamma(d)
        if abs(c) < 1e-6 or d.j not in preds:
            return np.inf
        # a negative slope is also undone by a plain negation (a sign slip; contact frames bias
        # the fitted slope of a negated dim away from -1)
        return min(_rms((ep.action[:, d.j] / x - preds[d.j]) / model.dims[d.j].resid)
                   for x in ((c, -1.0) if c < 0 else (c,)))

    off = [d for d in good if not (GAMMA_BOUNDS[0] <= rel_gamma(d) <= GAMMA_BOUNDS[1])
           and d.resid >= SIGN_SCALE_MIN_RESID]
    if th.resid_ref:
        # a dim scaled by c has its residual scaled by |c| after the slope is undone: compare the
        # undone residual with what the dim's residual usually is among its peers (contact-heavy
        # tasks keep a large residual that a slope cannot remove, so "the slope fit cuts the
        # residual" is not required)
        dev = [d for d in off if abs(d.gamma) >= MIN_SLOPE and d.j in th.resid_ref
               and (u := undone(d)) <= GAIN * d.resid and u <= usual_resid(d)]
    else:
        dev = [d for d in off if d.gamma_resid <= GAIN * d.resid and abs(d.gamma) >= MIN_SLOPE and undone_clean(d)]
    gs = [d.gamma for d in dev]
    uniform = len(dev) > 1 and min(gs) > 0 and max(gs) / min(gs) < 1.25
    if len(dev) > 1 and not uniform:
        dev = []          # several dims off in different ways: mislabelled actions, not a sign/scale slip
    # dims whose slope is far from their peers', with a residual clearly above their peers', that
    # undoing the slope does not make clean: the actions of those dims do not belong to the states
    slope_off = [d for d in off if d not in dev and th.resid_ref and d.resid > usual_resid(d)]
    # a time shift moves every reliable dimension the same way: pick it jointly (unless one dim is
    # clearly sign-flipped or mis-scaled: such a dim drags the joint curve toward the search edge)
    js = joint_shift(good) if not dev else None
    dim_moved: tuple[int, str] | None = None
    if js is not None:
        lag, joint = js
        k = int(np.argmin(joint))
        if th.lags is not None and len(th.lags) >= MIN_LAG_PEERS:
            # against the episode's peers: the usual lag of a task is not always 0 (controller
            # delays, contact-dominated motion), and some tasks have more than one usual lag
            ref = float(np.median(th.lags))
            r0 = float(np.interp(ref + SHIFT_SEARCH, np.arange(len(joint)), joint))
            others = list(th.lags)
            if lag in others:
                others.remove(lag)     # the episode itself
            near = sum(abs(x - lag) <= LAG_TOL for x in others)
            lag_is_usual = near >= max(1, LAG_USUAL_FRAC * len(others))
            # a lag shared by a cluster of peers is one of the task's usual lags unless moving back
            # to the median lag makes the fit much worse (then the cluster is shifted episodes)
            gain = joint[k] / r0 if r0 > 0 else 1.0
            hit = abs(lag - ref) >= SHIFT_MIN_DEV and (gain < SHIFT_STRONG_GAIN or
                                                       (not lag_is_usual and gain < SHIFT_PEER_GAIN))
            sh = int(round(lag - ref))
            base = r0
        else:
            sh = k - SHIFT_SEARCH
            base = joint[SHIFT_SEARCH]
            hit = abs(sh) >= 2 and base > SHIFT_MIN_RESID and joint[k] < SHIFT_GAIN * base
        # a real shift has an interior minimum that fits about as well as a clean episode; actions
        # unrelated to the states slide the minimum to the end of the search instead
        hit = hit and 0 < k < len(joint) - 1 and joint[k] <= th.resid
        # ... and at the best alignment the actions move with the states as well as the peers' do
        # (actions taken from another episode can fit slightly better at some shift, but stay
        # incoherent at every shift)
        coh_all = coherence(good)
        incoherent = th.coherence is not None and coh_all is not None and coh_all > th.coherence
        if hit and not incoherent and sh != 0:
            out.append(_shift_finding(ep, sh, f"residual {base:.1f}x -> {joint[k]:.1f}x"))
            return out
        if not incoherent:
            # the joint lag can stay among the peers' usual lags (a task with two of them: a shifted
            # episode of the late kind lands on the early one); a dim whose own lag is the same in
            # every peer still shows the shift. Weaker evidence: reported only when the actions do
            # not disagree with the states outright (below)
            dim_moved = dim_shift(good, th)
    flagged = set()
    for d in dev:
        flagged.add(d.j)
        if d.gamma < 0:
            out.append(make_finding("action.sign_error", ep.index, (0, n),
                                    f"action dim {nm(d.j)} has the opposite sign of what the states imply "
                                    f"(slope {d.gamma:.2f})", ts, dim=d.j, gamma=d.gamma))
        else:
            out.append(make_finding("action.scale_error", ep.index, (0, n),
                                    f"action dim {nm(d.j)} is {d.gamma:.2f}x what the states imply",
                                    ts, dim=d.j, gamma=d.gamma))
    rest = [d for d in good if d.j not in flagged]
    if rest:
        resid, roll = combined(rest)
        coh = coherence(rest)
        # a residual above the peers' with the actions still moving in lockstep with the states
        # (correlation as high as a typical peer's) is a fit that does not reach that part of the
        # motion (rest, an unusual pose), not a relabelling
        lockstep = coh is not None and th.coherence_med is not None and \
            coh <= max(LOCKSTEP_MIN, LOCKSTEP_FACTOR * th.coherence_med)
        if ((resid > th.resid or roll > th.roll) and not lockstep) or slope_off or \
                (th.coherence is not None and coh is not None and coh > th.coherence):
            worst = max(rest, key=lambda d: d.roll)
            frames = (0, n) if resid > th.resid else worst.roll_at
            out.append(make_finding("action.inconsistent", ep.index, frames,
                                    f"actions disagree with the following states (dims "
                                    f"{', '.join(nm(d.j) for d in rest[:4])}: residual {resid:.1f}x, worst "
                                    f"window {roll:.1f}x a clean episode's, correlation {1 - (coh or 0):.2f}"
                                    + "".join(f"; dim {nm(d.j)} slope {rel_gamma(d):.2f}x its peers'"
                                              for d in slope_off[:2]) + ")", ts,
                                    dims=[d.j for d in rest], resid=resid, roll=roll, coherence=coh,
                                    slope_off=[d.j for d in slope_off]))
    if dim_moved is not None and not out:
        out.append(_shift_finding(ep, *dim_moved))
    return out


def _shift_finding(ep: EpisodeArrays, sh: int, how: str) -> Finding:
    side = "late" if sh < 0 else "early"   # negative: actions match earlier state motion
    return make_finding("action.time_shift", ep.index, (0, ep.length),
                        f"actions fit the states best when moved {abs(sh)} frame(s) from the usual alignment: "
                        f"they are {side} relative to the states ({how})", ep.timestamps, shift_frames=sh)


def action_bounds(actions: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
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
    return q[0] - OUTLIER_MARGIN * w, q[3] + OUTLIER_MARGIN * w


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
                  fps: float) -> list[Finding]:
    """Repeated open/close toggles with very short dwell times."""
    if ep.action is None:
        return []
    out = []
    dwell = max(3, int(round(FLIP_DWELL * fps)))
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
        if len(changes) < FLIP_MIN_SHORT + 1:
            continue
        seg = np.diff(changes)
        short = seg < dwell
        for r0, r1 in runs(short):
            if r1 - r0 >= FLIP_MIN_SHORT:
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
