"""Per-dataset model of how actions relate to the states that follow them.

For every action dimension j the fit tries two relations and a few small lags L and keeps the
one that explains the data best (pooled R^2 over the dataset's episodes):

* ``delta``: a_j[t] ~ w . (s[t+1+L] - s[t+L]) + b   (velocity / end-effector delta actions,
  e.g. MetaWorld: position delta times a dataset-specific scale)
* ``abs``:   a_j[t] ~ w . s[t+1+L] + b               (position targets, e.g. joint commands)

w is a ridge least-squares fit over all state dimensions (which also covers action and state
spaces of different sizes). The fit is robust, per action dimension: an episode whose typical
(median) frame residual in dimension j is far above the other episodes' is left out of the fit
of dimension j only (a flipped gripper label must not remove the episode's arm motion from the
arm dims' fit), and the model is refitted. The per-episode level is a median over frames, not an
RMS, so that an episode which is mostly explained but contains a rare stretch of motion (a
lift at the end of a demo) stays in the fit and teaches it that motion. Dimensions with
R^2 < MIN_R2 are "unexplained" and the relation-based checks skip them. The dataset's relation
is the mode most explained dims use.
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
ACTIVE_FRAC = 0.05     # a dim "moves" in an episode when its std is above 5 % of the pooled std
LEVEL_FLOOR = 0.05    # ... and the median level it is compared with is at least 5 % of the dim's std
LEVEL_TRIM = 0.1      # per-episode residual level: RMS over all but the worst 10 % of frames
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
    E = len(pairs)
    keep = np.ones((E, A), bool)          # keep[e, j]: episode e is used to fit action dim j
    best, model.r2_table = _fit_combos(model, pairs, keep, all_combos, A)
    model.dims = best
    combos = sorted({(d.mode, d.lag) for d in best if d is not None})
    min_keep = max(3, E // 2)
    active = _active(pairs, A)
    floor = LEVEL_FLOOR * np.nanstd(np.concatenate([a for _, a in pairs]), axis=0)
    if E >= RANSAC_MIN:
        # a quarter of bad episodes can drag a pooled fit far enough that it explains them; start
        # instead, per dim, from the fit on a few episodes that best explains the typical episode
        # (RANSAC)
        act_sd = np.nanstd(np.concatenate([a for _, a in pairs]), axis=0)
        act_sd = np.where(act_sd > 1e-12, act_sd, np.inf)
        rng = np.random.default_rng(0)
        cands = [best]
        lengths = np.array([len(a) for _, a in pairs])
        pool = np.flatnonzero(lengths >= 0.5 * np.median(lengths))  # short episodes are suspects themselves
        for _ in range(RANSAC_TRIES if len(pool) >= RANSAC_SIZE else 0):
            sub = np.zeros((E, A), bool)
            sub[rng.choice(pool, RANSAC_SIZE, replace=False)] = True
            cands.append(_fit_combos(model, pairs, sub, combos, A)[0])
        scores = []
        for c in cands:
            model.dims = c
            scores.append(np.nanmedian(_level_matrix(model, pairs) / act_sd, axis=0))
        scores = np.array(scores)                       # [candidates, dims]
        chosen = list(best)
        for j in range(A):
            col = np.where(np.isfinite(scores[:, j]), scores[:, j], np.inf)
            k = int(np.argmin(col))
            # keep the pooled fit unless a subset fit explains the typical episode clearly better
            if k and col[k] < RANSAC_GAIN * col[0]:
                chosen[j] = cands[k][j]
        model.dims = chosen
        keep = _keep_mask(_level_matrix(model, pairs), min_keep, active, floor)
    for _round in range(1, ROUNDS):
        best, _ = _fit_combos(model, pairs, keep, combos, A)
        model.dims = best
        if _round == ROUNDS - 1 or E < 5:
            break
        # robust refit: per dim, leave out episodes whose typical residual is far above the rest
        new_keep = _keep_mask(_level_matrix(model, pairs), min_keep, active, floor)
        if (new_keep == keep).all():
            break
        keep = new_keep
    # the typical residual is the median over all episodes (not only the kept ones) in which the dim
    # moves: episodes that hold a gripper shut fit it almost exactly, and when they are the majority
    # (say, after some windows were cut short) their near-zero residual must not become the unit
    rms = _median_where_active(_residual_matrix(model, pairs), active)
    for j, d in enumerate(best):
        if d is not None and np.isfinite(rms[j]):
            d.resid = float(rms[j])
    model.dims = [d if d is not None and d.r2 >= MIN_R2 and d.resid > 0 else None for d in best]
    return model


def _fit_combos(model: ActionModel, pairs: list, keep: np.ndarray, combos: list[tuple[str, int]],
                A: int) -> tuple[list[DimModel | None], dict[str, list[float]]]:
    """Ridge fit of every action dim for each (mode, lag) on the episodes ``keep[:, j]`` allows
    for dim j; per dim the best R^2 wins."""
    best: list[DimModel | None] = [None] * A
    table: dict[str, list[float]] = {}
    keep = np.asarray(keep, bool)
    if keep.ndim == 1:
        keep = np.repeat(keep[:, None], A, axis=1)
    use = keep.any(axis=1)
    for mode, lag in combos:
        Xl, Yl, owner = [], [], []
        for i, (s, a) in enumerate(pairs):
            if not use[i]:
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
        rows = keep[own]                                   # [rows, A]: row used for dim j
        W = np.zeros((Xb.shape[1], A))
        R = np.full(Y.shape, np.nan)
        # dims sharing a row set are solved together
        patterns: dict[bytes, list[int]] = {}
        for j in range(A):
            patterns.setdefault(rows[:, j].tobytes(), []).append(j)
        for dims in patterns.values():
            m = rows[:, dims[0]]
            if m.sum() < 10:
                continue
            W[:, dims] = _ridge_huber(Xb[m], Y[m][:, dims])
            R[np.ix_(m, dims)] = Y[m][:, dims] - Xb[m] @ W[:, dims]
        var = np.array([Y[rows[:, j], j].var() if rows[:, j].sum() >= 10 else 0.0 for j in range(A)])
        mse = np.array([np.mean(R[rows[:, j], j] ** 2) if rows[:, j].sum() >= 10 else np.inf for j in range(A)])
        r2 = np.where(var > 1e-12, 1 - mse / np.where(var > 1e-12, var, 1), 0.0)
        table[f"{mode}@{lag}"] = [round(float(x), 4) for x in r2]
        for j in range(A):
            if not np.isfinite(mse[j]):
                continue
            m = rows[:, j]
            _, inv = np.unique(own[m], return_inverse=True)
            ss = np.bincount(inv, weights=R[m, j] ** 2)
            per_ep = float(np.median(np.sqrt(ss / np.bincount(inv))))  # typical episode RMS
            if best[j] is None or r2[j] > best[j].r2:
                best[j] = DimModel(mode, lag, W[:-1, j].copy(), float(W[-1, j]), float(r2[j]), per_ep)
    return best, table


def _ridge_huber(Xb: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Ridge least squares (intercept unpenalized) with one Huber reweighting step: rows far off
    the fit (a spike, a glitch) get weight c/|z|."""
    reg = RIDGE * len(Xb) * np.eye(Xb.shape[1])
    reg[-1, -1] = 0
    W = np.linalg.solve(Xb.T @ Xb + reg, Xb.T @ Y)
    R = Y - Xb @ W
    mad = 1.4826 * np.median(np.abs(R - np.median(R, axis=0)), axis=0)
    z = np.max(np.abs(R) / np.where(mad > 1e-12, mad, np.inf), axis=1)
    wt = np.minimum(1.0, HUBER_C / np.maximum(z, 1e-12))
    if (wt < 1).any():
        Xw = Xb * wt[:, None]
        W = np.linalg.solve(Xw.T @ Xb + reg * wt.mean(), Xw.T @ Y)
    return W


def _residual_matrix(model: ActionModel, pairs: list, trim: float = 0.0) -> np.ndarray:
    """[episodes, action dims] RMS frame residual of the current model, over all but the worst
    ``trim`` share of frames (0: plain RMS). NaN where undefined."""
    out = np.full((len(pairs), len(model.dims)), np.nan)
    for i, (s, a) in enumerate(pairs):
        for j, d in enumerate(model.dims):
            if d is None:
                continue
            p = model.predict(s, len(a), j)
            ok = np.isfinite(p) & np.isfinite(a[:, j])
            if ok.sum() > 3:
                r2 = (a[ok, j] - p[ok]) ** 2
                if trim > 0:
                    r2 = np.sort(r2)[: max(4, int(np.ceil((1 - trim) * len(r2))))]
                out[i, j] = np.sqrt(r2.mean())
    return out


def _level_matrix(model: ActionModel, pairs: list) -> np.ndarray:
    """Typical residual per episode and dim: the RMS without the worst LEVEL_TRIM of frames, blind
    to a short stretch the model does not reach yet."""
    return _residual_matrix(model, pairs, LEVEL_TRIM)


def _active(pairs: list, A: int) -> np.ndarray:
    """[episodes, action dims]: the episode's action moves in that dim (std above ACTIVE_FRAC of the
    pooled std). An episode holding a dim constant (a gripper kept closed) says nothing about its
    slope and its near-zero residual must not set the scale other episodes are judged by."""
    sd = np.nanstd(np.concatenate([a for _, a in pairs]), axis=0)
    return np.array([np.nanstd(a, axis=0) > ACTIVE_FRAC * sd for _, a in pairs]).reshape(len(pairs), A)


def _median_where_active(level: np.ndarray, active: np.ndarray | None) -> np.ndarray:
    """Per dim, the median of ``level`` [episodes, dims] over the episodes in which the dim moves,
    when at least three do (else over all episodes)."""
    med = np.nanmedian(level, axis=0)
    if active is not None:
        for j in range(level.shape[1]):
            if active[:, j].sum() >= 3:
                med[j] = np.nanmedian(level[active[:, j], j])
    return med


def _keep_mask(level: np.ndarray, min_keep: int, active: np.ndarray | None = None,
               floor: np.ndarray | None = None) -> np.ndarray:
    """Per dim, the episodes whose typical residual is within OUTLIER_FACTOR x the median episode's
    (all of them when that would leave fewer than ``min_keep``). The median is taken over the
    episodes in which the dim moves, when at least three do, and is at least ``floor``."""
    med = _median_where_active(level, active)
    if floor is not None:
        med = np.maximum(med, floor)   # a near-perfect fit (a binary gripper) must not make 0.01 an outlier
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = level / np.where(med > 1e-12, med, np.nan)
    keep = np.nan_to_num(ratio, nan=0.0) <= OUTLIER_FACTOR
    few = keep.sum(axis=0) < min_keep
    keep[:, few] = True
    return keep
