"""Time findings: non-monotonic or duplicated timestamps, jitter, gaps, rate, offsets between streams.

Stream offset: a camera lagging (or leading) the state is estimated by cross-correlating the
image motion energy (mean absolute difference of consecutive thumbnails) with the state speed
(norm of the per-dimension-normalized state difference); the lag with the highest correlation
is compared to the dataset's usual lag.
"""

from __future__ import annotations

import numpy as np

from vla.data.audit.episode import EpisodeArrays
from vla.data.audit.findings import Finding, make_finding
from vla.data.audit.runs import mad, merge_ranges, runs

JITTER_TOL = 0.05      # robust std of frame intervals above 5 % of the period -> jitter
GAP_FACTOR = 1.5       # an interval longer than 1.5 periods is a gap (dropped samples)
RATE_TOL = 0.05        # median interval more than 5 % off 1/fps -> rate mismatch
OFFSET_MIN = 4         # camera/state lag differing from the dataset's by >= 4 frames
OFFSET_MIN_CORR = 0.3  # and only when the correlation peak is this clear
OFFSET_MARGIN = 0.02   # ... and beats the correlation at the usual lag (at all)
OFFSET_SPREAD = 3.0    # ... by more than 3x the robust spread of the peers' lags


def check_timestamps(ep: EpisodeArrays, fps: float) -> list[Finding]:
    ts = ep.timestamps
    out: list[Finding] = []
    if len(ts) < 2 or fps <= 0:
        return out
    p = 1.0 / fps
    d = np.diff(ts)
    for a, b in merge_ranges(runs(d < -1e-9), slack=1):
        out.append(make_finding("time.non_monotonic", ep.index, (a, b + 1),
                                f"timestamps go backwards {int((d[a:b] < -1e-9).sum())} time(s), "
                                f"by up to {-d[a:b].min() * 1000:.1f} ms", ts))
    dup = np.abs(d) <= 1e-3 * p
    for a, b in merge_ranges(runs(dup), slack=1):
        out.append(make_finding("time.duplicate_timestamp", ep.index, (a, b + 1),
                                f"{int(dup[a:b].sum())} repeated timestamp(s) at {ts[a]:.3f} s", ts))
    # rate, gaps and jitter are judged on the sorted, de-duplicated timestamps so that a swapped or
    # repeated timestamp is reported once (above), not again as a gap
    order = np.argsort(ts, kind="stable")
    keep = np.ones(len(order), bool)
    keep[1:] = np.diff(ts[order]) > 1e-3 * p
    order = order[keep]
    d = np.diff(ts[order])
    pos = d[d > 1e-3 * p]
    if pos.size >= 5:
        med = float(np.median(pos))
        if abs(med - p) > RATE_TOL * p:
            out.append(make_finding("time.rate_mismatch", ep.index, (0, len(ts)),
                                    f"median interval {med * 1000:.2f} ms, nominal {p * 1000:.2f} ms "
                                    f"({1 / med:.1f} Hz vs {fps:g} Hz)", ts, median_interval_s=med))
            p = med  # judge gaps and jitter against the rate the episode was actually recorded at
    gaps = d > GAP_FACTOR * p
    for a, b in runs(gaps):
        a, b = int(min(order[a], order[b])), int(max(order[a], order[b]))
        lost = int(np.round(d[a:b] / p).sum() - (b - a))
        out.append(make_finding("time.gap", ep.index, (a, b + 1),
                                f"{d[a:b].max() * 1000:.0f} ms without a sample (~{lost} frame(s) missing "
                                f"at {1 / p:.3g} Hz)", ts, missing_frames=lost))
    normal = d[(d > 0.5 * p) & (d < GAP_FACTOR * p)]
    if normal.size >= 5:
        jit = mad(normal)
        if jit > JITTER_TOL * p:
            out.append(make_finding("time.jitter", ep.index, (0, len(ts)),
                                    f"frame interval varies by {jit * 1000:.2f} ms (robust std), "
                                    f"{100 * jit / p:.0f} % of the {p * 1000:.1f} ms period", ts,
                                    jitter_s=jit))
    return out


def motion_energy(thumbs: np.ndarray) -> np.ndarray:
    """Mean absolute difference between consecutive thumbnails: [N-1]."""
    if len(thumbs) < 2:
        return np.zeros(0)
    return np.abs(np.diff(thumbs, axis=0)).mean(axis=(1, 2))


def state_speed(state: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Norm of the per-dimension normalized state difference: [T-1]."""
    d = np.diff(state, axis=0)
    if scale is None:
        scale = np.nanstd(d, axis=0)
    scale = np.where(scale > 1e-12, scale, np.inf)
    return np.sqrt(np.nansum((d / scale) ** 2, axis=1))


def best_lag(x: np.ndarray, y: np.ndarray, max_lag: int) -> tuple[int, float, float]:
    """Lag L maximizing corr(x[t], y[t - L]); returns (L, corr at L, corr at 0)."""
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    best = (0, -2.0)
    c0 = -2.0
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            a, b = x[lag:], y[: n - lag]
        else:
            a, b = x[: n + lag], y[-lag:]
        if len(a) < 8 or a.std() < 1e-12 or b.std() < 1e-12:
            continue
        c = float(np.corrcoef(a, b)[0, 1])
        if lag == 0:
            c0 = c
        if c > best[1]:
            best = (lag, c)
    return best[0], best[1], c0


def corr_at(x: np.ndarray, y: np.ndarray, lag: int) -> float:
    """corr(x[t], y[t - lag]) over the overlap (nan when degenerate)."""
    n = min(len(x), len(y))
    a, b = (x[lag:n], y[: n - lag]) if lag >= 0 else (x[: n + lag], y[-lag:n])
    if len(a) < 8 or a.std() < 1e-12 or b.std() < 1e-12:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def visible_dims(episodes: list[EpisodeArrays], scale: np.ndarray | None) -> list[int]:
    """State dims whose speed tracks image motion (e.g. hand position, not a hidden joint)."""
    per: dict[int, list[float]] = {}
    for ep in episodes:
        if ep.state is None or not ep.images or len(ep.state) < 16 or not np.isfinite(ep.state).all():
            continue
        m = motion_energy(next(iter(ep.images.values())))
        d = np.abs(np.diff(ep.state, axis=0))
        for i in range(d.shape[1]):
            cs = [corr_at(m, d[:, i], lag) for lag in range(-3, 4)]
            cs = [c for c in cs if np.isfinite(c)]
            per.setdefault(i, []).append(max(cs) if cs else 0.0)
    if not per:
        return []
    med = {i: float(np.median(v)) for i, v in per.items()}
    top = max(med.values())
    return [i for i, c in med.items() if c >= max(0.2, 0.5 * top)]


def camera_lags(ep: EpisodeArrays, state_scale: np.ndarray | None, dims: list[int] | None = None,
                max_lag: int = 12) -> dict[str, tuple[int, float, np.ndarray]]:
    """Per camera: (best lag, peak correlation, correlation per lag) of image motion vs state speed.

    A positive lag means the camera is late. ``dims`` restricts the speed to visible state dims.
    """
    out: dict[str, tuple[int, float, np.ndarray]] = {}
    if ep.state is None or len(ep.state) < 16 or not np.isfinite(ep.state).all():
        return out
    s = ep.state if not dims else ep.state[:, dims]
    sc = None if state_scale is None else (state_scale if not dims else state_scale[dims])
    v = state_speed(s, sc)
    for key, th in ep.images.items():
        m = motion_energy(th)
        if len(m) < 16:
            continue
        L = min(max_lag, len(m) // 4)
        cs = np.array([corr_at(m, v, lag) for lag in range(-L, L + 1)])
        if not np.isfinite(cs).any():
            continue
        k = int(np.nanargmax(cs))
        out[key] = (k - L, float(cs[k]), cs)
    return out


def check_stream_offset(ep: EpisodeArrays, lags: dict[str, tuple[int, float, np.ndarray]],
                        usual: dict[str, tuple[float, float]]) -> list[Finding]:
    """Flag a camera whose lag differs from its peers' usual lag by more than the peers' own spread.

    ``usual[camera] = (median lag, robust spread of the lags)`` over the episode's peers.
    """
    out = []
    for key, (lag, c, cs) in lags.items():
        ref, spread = usual.get(key, (0.0, 0.0))
        L = (len(cs) - 1) // 2
        c_ref = cs[int(np.clip(round(ref) + L, 0, len(cs) - 1))]
        need = max(OFFSET_MIN, int(np.ceil(OFFSET_SPREAD * spread)))
        if c >= OFFSET_MIN_CORR and abs(lag - ref) >= need and (not np.isfinite(c_ref) or c - c_ref >= OFFSET_MARGIN):
            side = "lags" if lag > ref else "leads"
            out.append(make_finding("time.stream_offset", ep.index, (0, ep.length),
                                    f"camera {key.split('.')[-1]} {side} the state by {abs(lag - ref):.0f} "
                                    f"frame(s) (motion/speed correlation {c:.2f} vs {c_ref:.2f} at the "
                                    f"usual lag {ref:g})", ep.timestamps, camera=key, lag_frames=lag - ref,
                                    corr=c))
    return out
