"""Time shifts seen dim by dim: in a task with two usual joint lags a shifted episode can land on the
other one, but a dim whose own lag is the same in every peer still shows the shift. Only dims whose
peers agree count ("tight"), every tight dim must move the same way, far from the peers' lag, to a
lag no cluster of peers shares, and fit better there; an episode whose actions disagree with the
states outright is reported as inconsistent, not as shifted."""

from __future__ import annotations

import numpy as np

from vla.data.audit import action_checks as ac
from vla.data.audit.action_model import ActionModel, DimModel
from vla.data.audit.episode import EpisodeArrays


def _curve(lag: float, depth: float = 0.05) -> np.ndarray:
    """A residual curve over shifts -shift_search..shift_search with its minimum at ``lag``."""
    x = np.arange(-ac.TUNING.shift_search, ac.TUNING.shift_search + 1)
    return 1.0 + depth * (x - lag) ** 2


def _dim(j: int, lag: float, depth: float = 0.05) -> ac.DimStats:
    return ac.DimStats(j, 1.0, 1.0, (0, 10), 1.0, 1.0, 0, 1.0, _curve(lag, depth))


def _peers(rng: np.random.Generator) -> ac.RelationThresholds:
    th = ac.RelationThresholds()
    # dim 0: two usual lags (about 0.2 and 2.7-4.7, as pulling a door makes); dim 2: about 0.1 in every peer
    th.dim_lags = {0: list(rng.uniform(-0.2, 0.6, 12)) + list(rng.uniform(2.7, 4.7, 8)),
                   2: list(rng.normal(0.1, 0.1, 20))}
    assert ac.TUNING.dim_lag_tight < 1.4826 * np.median(np.abs(th.dim_lags[0] - np.median(th.dim_lags[0])))
    return th


def test_a_tight_dim_shows_a_shift_the_joint_lag_hides():
    th = _peers(np.random.default_rng(0))
    # a late-mode episode moved 3 frames: dim 0 lands on the early usual lag, dim 2 leaves its peers
    moved = ac.dim_shift([_dim(0, 0.4), _dim(2, -2.9)], th)
    assert moved is not None and moved[0] == -3
    assert "dim 2" in moved[1]


def test_a_tight_dim_at_its_usual_lag_is_not_a_shift():
    th = _peers(np.random.default_rng(1))
    assert ac.dim_shift([_dim(0, 3.6), _dim(2, 0.2)], th) is None      # late mode, clean
    assert ac.dim_shift([_dim(0, 0.1), _dim(2, 1.2)], th) is None      # within SHIFT_MIN_DEV frames


def test_loose_dims_do_not_decide_and_tight_dims_must_agree():
    rng = np.random.default_rng(2)
    th = _peers(rng)
    # dim 0 alone is loose (its peers disagree): never evidence on its own
    assert ac.dim_shift([_dim(0, -4.0)], th) is None
    # two tight dims moved opposite ways: not one shift of the actions
    th.dim_lags[1] = list(rng.normal(-0.5, 0.1, 20))
    assert ac.dim_shift([_dim(1, 2.5), _dim(2, -2.9)], th) is None
    # one tight dim moved, the other stayed: not a shift either
    assert ac.dim_shift([_dim(1, -0.5), _dim(2, -2.9)], th) is None
    assert ac.dim_shift([_dim(1, -3.4), _dim(2, -2.9)], th) is not None


def test_a_shift_needs_a_better_fit_and_enough_peers():
    th = _peers(np.random.default_rng(3))
    # a curve flat enough that the peers' lag fits as well: no evidence
    assert ac.dim_shift([_dim(2, -2.9, depth=0.001)], th) is None
    few = ac.RelationThresholds(dim_lags={2: [0.1, 0.1, 0.12]})
    assert ac.dim_shift([_dim(2, -2.9)], few) is None


def _episode(n: int = 60) -> EpisodeArrays:
    return EpisodeArrays(index=3, timestamps=np.arange(n) / 10.0, state=np.zeros((n, 4)),
                         action=np.zeros((n, 4)))


def test_outright_disagreement_is_inconsistent_not_shifted():
    dims = [DimModel("delta", 1, np.zeros(4), 0.0, 0.95, 1.0) if j in (0, 2) else None for j in range(4)]
    model = ActionModel({}, {}, dims)
    th = _peers(np.random.default_rng(4))
    th.lags = list(np.random.default_rng(5).normal(0.2, 0.1, 20))
    clean = [_dim(0, 0.4), _dim(2, -2.9)]
    f = ac.check_relation(_episode(), clean, th, model)
    assert [x.type for x in f] == ["action.time_shift"] and f[0].details["shift_frames"] == -3
    for d in clean:
        d.resid = d.roll = 6.0        # far above the peers' residual: the actions do not belong to the states
    f = ac.check_relation(_episode(), clean, th, model)
    assert [x.type for x in f] == ["action.inconsistent"]
