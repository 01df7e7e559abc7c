"""Per-dataset model of how actions relate to the states that follow them.

For every action dimension j the fit tries two relations and a few small lags L and keeps the
one that explains the data best (pooled R^2 over the dataset's episodes):

* ``delta``: a_j[t] ~ w . (s[t+1+L] - s[t+L]) + b   (velocity / end-effector delta actions,
  e.g. MetaWorld: position delta times a dataset-specific scale)
* ``abs``:   a_j[t] ~ w . s[t+1+L] + b               (position targets, e.g. joint commands)

w is a ridge least-squares fit over all state dimensions (which also covers action and state
spaces of different sizes). The fit is robust: episodes whose residual is far above the others
are left out and the model is refitted. Dimensions with R^2 < MIN_R2 are "unexplained" and the
relation-based checks skip them. The dataset's relation is the mode most explained dims use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MODES = ("delta", "abs")
MAX_LAG = 3
MIN_R2 = 0.5
RIDGE = 1e-3
MAX_ROWS = 60_000
ROUNDS = 4            # fit, then refit without episodes whose residual > OUTLIER_FACTOR x median
OUTLIER_FACTOR = 2.0
RANSAC_MIN = 6        # episodes needed before trying fits on small subsets
RANSAC_TRIES = 8
RANSAC_SIZE = 3
RANSAC_GAIN = 0.9
PLAUSIBLE_MARGIN = 2.0
HUBER_C = 3.0         # Huber threshold on the row residual, in robust (MAD) standard deviations


@dataclass
class DimModel:
    mode: str
    lag: int
    w: np.ndarray          # [D] on standardized features
    b: float
    r2: float
    resid: float           # typical residual RMS of a clean episode


@dataclass
class ActionModel:
    """Fitted relation; ``dims[j]`` is None for unexplained action dimensions."""

    mu: dict[str, np.ndarray]
    sd: dict[str, np.ndarray]
    dims: list[DimModel | None] = field(default_factory=list)
    r2_table: dict[str, list[float]] = field(default_factory=dict)
    # plausible range of predicted actions (the dataset's action range widened by PLAUSIBLE_MARGIN
    # 1-99 % widths); a prediction beyond it comes from a state glitch (a jump, an angle wrap), not
    # from the action label, and the per-episode checks leave that frame out
    plausible: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def explained(self) -> list[int]:
        return [j for j, d in enumerate(self.dims) if d is not None]

    @property
    def relation(self) -> str:
        modes = [d.mode for d in self.dims if d is not None]
        if not modes:
            return "none"
        return max(MODES, key=modes.count)

    def features(self, state: np.ndarray, mode: str, lag: int, n: int) -> np.ndarray:
        """Standardized features aligned with actions a[0:n]; rows outside the episode are NaN."""
        T = len(state)
        X = np.full((n, state.shape[1]), np.nan)
        nxt = np.arange(n) + 1 + lag
        ok = (nxt < T) & (nxt >= (1 if mode == "delta" else 0))
        if mode == "delta":
            X[ok] = state[nxt[ok]] - state[nxt[ok] - 1]
        else:
            X[ok] = state[nxt[ok]]
        return (X - self.mu[mode]) / self.sd[mode]

    def predict(self, state: np.ndarray, n: int, j: int, shift: int = 0) -> np.ndarray:
        """Predicted a_j[0:n] from the states; ``shift`` moves the alignment by that many frames."""
        d = self.dims[j]
        if d is None:
            raise ValueError(f"action dim {j} is not explained by the fitted relation")
        return self.features(state, d.mode, d.lag + shift, n) @ d.w + d.b

    def to_dict(self) -> dict:
        return {"relation": self.relation, "explained_dims": self.explained,
                "dims": [None if d is None else {"mode": d.mode, "lag": d.lag, "r2": round(d.r2, 4)}
                         for d in self.dims]}


def _pairs(states: list[np.ndarray], actions: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for s, a in zip(states, actions, strict=True):
        if s is None or a is None or len(s) < 4 or len(a) < 4:
            out.append((None, None))
        else:
            out.append((s, a))
    return out


def fit_action_model(states: list[np.ndarray | None], actions: list[np.ndarray | None]) -> ActionModel | None:
    """Fit the relation over the dataset's episodes; None when there is nothing to fit."""
    pairs = [(s, a) for s, a in _pairs(states, actions) if s is not None]
    if not pairs:
        return None
    A = pairs[0][1].shape[1]
    # feature standardization per mode (pooled)
    mu, sd = {}, {}
    for mode in MODES:
        Xs = []
        for s, _ in pairs:
            f = np.diff(s, axis=0) if mode == "delta" else s[1:]
            Xs.append(f[np.isfinite(f).all(axis=1)])
        X = np.concatenate(Xs) if Xs else np.zeros((0, pairs[0][0].shape[1]))
        mu[mode] = X.mean(axis=0) if len(X) else 0.0
        s_ = X.std(axis=0) if len(X) else np.ones(pairs[0][0].shape[1])
        sd[mode] = np.where(s_ > 1e-9, s_, np.inf)
    model = ActionModel(mu, sd, [None] * A)
    acts = np.concatenate([a for _, a in pairs])
    acts = acts[np.isfinite(acts).all(axis=1)]
    if len(acts) >= 10:
        q1, q99 = np.quantile(acts, [0.01, 0.99], axis=0)
        w = np.maximum(q99 - q1, 1e-6)
        model.plausible = (q1 - PLAUSIBLE_MARGIN * w, q99 + PLAUSIBLE_MARGIN * w)
    all_combos = [(m, lag) for m in MODES for lag in range(MAX_LAG + 1)]
    keep = np.ones(len(pairs), bool)
    best, model.r2_table = _fit_combos(model, pairs, keep, all_combos, A)
    model.dims = best
    combos = sorted({(d.mode, d.lag) for d in best if d is not None})
    if len(pairs) >= RANSAC_MIN:
        # a quarter of bad episodes can drag a pooled fit far enough that it explains them; start
        # instead from the fit on a few episodes that best explains the typical episode (RANSAC)
        act_sd = np.nanstd(np.concatenate([a for _, a in pairs]), axis=0)
        act_sd = np.where(act_sd > 1e-12, act_sd, np.inf)
        rng = np.random.default_rng(0)
        cands = [best]
        lengths = np.array([len(a) for _, a in pairs])
        pool = np.flatnonzero(lengths >= 0.5 * np.median(lengths))  # short episodes are suspects themselves
        for _ in range(RANSAC_TRIES if len(pool) >= RANSAC_SIZE else 0):
            sub = np.zeros(len(pairs), bool)
            sub[rng.choice(pool, RANSAC_SIZE, replace=False)] = True
            cands.append(_fit_combos(model, pairs, sub, combos, A)[0])
        scores = []
        for c in cands:
            model.dims = c
            rms = _rms_matrix(model, pairs)
            scores.append(float(np.nansum(np.nanmedian(rms / act_sd, axis=0))))
        k = int(np.argmin(scores))
        # keep the pooled fit unless a subset fit explains the typical episode clearly better
        model.dims = cands[k] if scores[k] < RANSAC_GAIN * scores[0] else cands[0]
        rms = _rms_matrix(model, pairs)
        ratio = np.nanmax(rms / np.nanmedian(rms, axis=0), axis=1)
        keep = np.nan_to_num(ratio, nan=0.0) <= OUTLIER_FACTOR
        if keep.sum() < max(3, len(pairs) // 2):
            keep = np.ones(len(pairs), bool)
    for _round in range(1, ROUNDS):
        best, _ = _fit_combos(model, pairs, keep, combos, A)
        model.dims = best
        if _round == ROUNDS - 1 or len(pairs) < 5:
            break
        # robust refit: leave out episodes whose residual is far above the rest
        scores_e = np.array([_episode_resid(model, s, a) for s, a in pairs])
        med = np.median(scores_e[keep]) if keep.any() else np.median(scores_e)
        new_keep = scores_e <= max(OUTLIER_FACTOR * med, med + 1e-9)
        if new_keep.sum() < max(3, len(pairs) // 2) or (new_keep == keep).all():
            break
        keep = new_keep
    # the typical residual is the median over all episodes (not only the kept ones)
    rms = np.nanmedian(_rms_matrix(model, pairs), axis=0)
    for j, d in enumerate(best):
        if d is not None and np.isfinite(rms[j]):
            d.resid = float(rms[j])
    model.dims = [d if d is not None and d.r2 >= MIN_R2 and d.resid > 0 else None for d in best]
    return model


def _fit_combos(model: ActionModel, pairs: list, keep: np.ndarray, combos: list[tuple[str, int]],
                A: int) -> tuple[list[DimModel | None], dict[str, list[float]]]:
    """Ridge fit of every action dim for each (mode, lag); per dim the best R^2 wins."""
    best: list[DimModel | None] = [None] * A
    table: dict[str, list[float]] = {}
    for mode, lag in combos:
        Xl, Yl, owner = [], [], []
        for i, (s, a) in enumerate(pairs):
            if not keep[i]:
                continue
            X = model.features(s, mode, lag, len(a))
            ok = np.isfinite(X).all(axis=1) & np.isfinite(a).all(axis=1)
            Xl.append(X[ok])
            Yl.append(a[ok])
            owner.append(np.full(int(ok.sum()), i))
        if not Xl:
            continue
        X = np.concatenate(Xl)
        Y = np.concatenate(Yl)
        own = np.concatenate(owner)
        if len(X) < 10:
            continue
        if len(X) > MAX_ROWS:
            sel = np.linspace(0, len(X) - 1, MAX_ROWS).astype(int)
            X, Y, own = X[sel], Y[sel], own[sel]
        Xb = np.concatenate([X, np.ones((len(X), 1))], axis=1)
        reg = RIDGE * len(X) * np.eye(Xb.shape[1])
        reg[-1, -1] = 0
        W = np.linalg.solve(Xb.T @ Xb + reg, Xb.T @ Y)
        R = Y - Xb @ W
        # one Huber reweighting step: rows far off the fit (a spike, a glitch) get weight c/|z|
        mad = 1.4826 * np.median(np.abs(R - np.median(R, axis=0)), axis=0)
        z = np.max(np.abs(R) / np.where(mad > 1e-12, mad, np.inf), axis=1)
        wt = np.minimum(1.0, HUBER_C / np.maximum(z, 1e-12))
        if (wt < 1).any():
            Xw = Xb * wt[:, None]
            W = np.linalg.solve(Xw.T @ Xb + reg * wt.mean(), Xw.T @ Y)
            R = Y - Xb @ W
        var = Y.var(axis=0)
        r2 = np.where(var > 1e-12, 1 - (R**2).mean(axis=0) / np.where(var > 1e-12, var, 1), 0.0)
        table[f"{mode}@{lag}"] = [round(float(x), 4) for x in r2]
        _, inv = np.unique(own, return_inverse=True)
        ss = np.zeros((int(inv.max()) + 1, A))
        np.add.at(ss, inv, R**2)
        per_ep = np.median(np.sqrt(ss / np.bincount(inv)[:, None]), axis=0)  # typical episode RMS
        for j in range(A):
            if best[j] is None or r2[j] > best[j].r2:
                best[j] = DimModel(mode, lag, W[:-1, j], float(W[-1, j]), float(r2[j]), float(per_ep[j]))
    return best, table


def _rms_matrix(model: ActionModel, pairs: list) -> np.ndarray:
    """[episodes, action dims] RMS residual of the current model (NaN where undefined)."""
    out = np.full((len(pairs), len(model.dims)), np.nan)
    for i, (s, a) in enumerate(pairs):
        for j, d in enumerate(model.dims):
            if d is None:
                continue
            p = model.predict(s, len(a), j)
            ok = np.isfinite(p) & np.isfinite(a[:, j])
            if ok.sum() > 3:
                out[i, j] = np.sqrt(((a[ok, j] - p[ok]) ** 2).mean())
    return out


def _episode_resid(model: ActionModel, s: np.ndarray, a: np.ndarray) -> float:
    """Worst per-dimension residual of an episode relative to the typical one (1 = typical)."""
    vals = []
    for j, d in enumerate(model.dims):
        if d is None or d.resid <= 0:
            continue
        p = model.predict(s, len(a), j)
        ok = np.isfinite(p) & np.isfinite(a[:, j])
        if ok.sum() > 3:
            vals.append(np.sqrt(((a[ok, j] - p[ok]) ** 2).mean()) / d.resid)
    return float(np.max(vals)) if vals else 0.0
