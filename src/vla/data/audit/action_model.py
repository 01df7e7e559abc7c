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
    keep = np.ones(len(pairs), bool)
    best: list[DimModel | None] = [None] * A
    chosen: list[DimModel | None] = [None] * A
    for _round in range(ROUNDS):
        best = [None] * A
        table: dict[str, list[float]] = {}
        # first round: every relation and lag; refits only revisit the ones chosen
        combos = [(m, lag) for m in MODES for lag in range(MAX_LAG + 1)] if _round == 0 else \
            sorted({(d.mode, d.lag) for d in chosen if d is not None})
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
        model.dims = best
        chosen = list(best)
        if _round == 0:
            model.r2_table = table
        # robust refit: leave out episodes whose residual is far above the rest
        if _round < ROUNDS - 1 and len(pairs) >= 5:
            scores = np.array([_episode_resid(model, s, a) for s, a in pairs])
            med = np.median(scores[keep]) if keep.any() else np.median(scores)
            new_keep = scores <= max(OUTLIER_FACTOR * med, med + 1e-9)
            if new_keep.sum() < max(3, len(pairs) // 2):
                break
            if (new_keep == keep).all() and _round > 0:
                break
            keep = new_keep
        else:
            break
    model.dims = [d if d is not None and d.r2 >= MIN_R2 and d.resid > 0 else None for d in best]
    return model


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
