"""Robustness of the dataset-relative checks: a held state is frozen even while the command is
constant when the dataset's states never repeat, a few action spikes do not bend the relation fit
into flagging untouched episodes, and a scaled dimension is reported as a scale error."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from vla.data.audit import audit_arrays
from vla.data.audit import modality_checks as mc
from vla.data.audit import synthetic as S
from vla.data.audit.inject import FAULTS, injection_context

NAMES = ["dx", "dy", "dz", "gripper"]


@pytest.fixture(scope="module")
def clean():
    return [e.arrays(i) for i, e in enumerate(S.dataset(16, seed=5))]


def test_frozen_state_with_constant_command(clean):
    assert mc.state_repeat_rate([e.state for e in clean]) == 0.0
    eps = [e for e in clean]
    ep = FAULTS["modality.frozen_state"].inject(clean[4], np.random.default_rng(1), 10)
    held = np.flatnonzero(np.all(np.diff(ep.state, axis=0) == 0, axis=1))
    ep.action[held[0]: held[-1] + 2] = ep.action[held[0]]  # the command does not change either
    eps[4] = ep
    rep = audit_arrays(eps, S.FPS, action_names=NAMES)
    assert rep.episode(4).has("modality.frozen_state")
    # a dataset whose states repeat all the time (coarse encoders, idle robot) needs a command change
    # (and, without a camera to show the motion, stays quiet when the command is constant)
    blind = copy.deepcopy(ep)
    blind.images = {}
    assert mc.check_frozen_state(blind, None, repeat_rate=0.5) == []
    assert mc.check_frozen_state(blind, None, repeat_rate=0.0) != []


def test_action_spikes_do_not_flag_untouched_episodes(clean):
    ctx = injection_context(clean)
    rng = np.random.default_rng(3)
    target = {1, 6, 9, 13}
    eps = [FAULTS["action.outlier"].inject(e, rng, 10, None, ctx) if e.index in target else e for e in clean]
    rep = audit_arrays(eps, S.FPS, action_names=NAMES)
    for t in target:
        assert rep.episode(t).has("action.outlier")
    others = [f.line() for e in rep.episodes if e.episode not in target for f in e.findings]
    assert others == []


def test_scaled_dimension_is_a_scale_error(clean):
    ctx = injection_context(clean)
    eps = [FAULTS["action.scale_error"].inject(e, None, 2, None, ctx) if e.index == 7 else e for e in clean]
    rep = audit_arrays(eps, S.FPS, action_names=NAMES)
    f = next(f for f in rep.episode(7).findings if f.type == "action.scale_error")
    assert 1.6 < f.details["gamma"] < 2.5


def test_fit_exclusion_is_per_dimension():
    """Episodes with a corrupted gripper label are left out of the gripper dim's fit only: the arm
    dims are still fitted on every episode (keep mask per dim), and the median level a dim is
    judged by comes from the episodes in which it moves (floored for a near-perfect fit)."""
    from vla.data.audit.action_model import _keep_mask

    level = np.array([[1.0, 0.0], [1.1, 0.0], [0.9, 0.0], [1.0, 0.01], [1.2, 0.9], [5.0, 0.0]])
    active = np.array([[1, 0], [1, 0], [1, 0], [1, 1], [1, 1], [1, 1]], bool)
    keep = _keep_mask(level, 3, active, floor=np.array([0.0, 0.05]))
    assert keep[:, 0].tolist() == [True, True, True, True, True, False]
    # dim 1: median over the moving episodes (0.01, 0.9, 0.0) -> 0.01, floored to 0.05: 0.9 is out,
    # 0.01 (a near-perfect fit of a binary gripper) is not
    assert keep[:, 1].tolist() == [True, True, True, True, False, True]


def test_corrupted_gripper_does_not_flag_untouched_episodes(clean):
    ctx = injection_context(clean)
    ctx["gripper_dims"] = [3]
    from vla.data.audit.action_checks import gripper_levels

    ctx["gripper_levels"] = gripper_levels([e.action for e in clean], [3])
    rng = np.random.default_rng(2)
    target = {0, 5, 10, 15}
    eps = [FAULTS["action.gripper_flip_flop"].inject(e, rng, 8, None, ctx) if e.index in target else e
           for e in clean]
    rep = audit_arrays(eps, S.FPS, action_names=NAMES)
    for t in target:
        assert rep.episode(t).has("action.gripper_flip_flop")
    assert [f.line() for e in rep.episodes if e.episode not in target for f in e.findings] == []


def test_outlier_bounds_weigh_episodes_equally():
    """A few very long episodes must not redefine the action range: a value the short episodes all
    reach is not an outlier."""
    from vla.data.audit.action_checks import action_bounds

    rng = np.random.default_rng(0)
    short = [np.concatenate([rng.normal(0, 0.1, (90, 1)), np.full((10, 1), 1.0)]) for _ in range(4)]
    long = [rng.normal(0, 0.1, (8000, 1)) for _ in range(2)]
    lo, hi = action_bounds(short + long)
    assert hi[0] > 1.0
    # frame-weighted, the 1.0 plateau would be 0.25 % of the frames and the bound would fall below it
    X = np.concatenate(short + long)[:, 0]
    q = np.quantile(X, [0.01, 0.99, 0.995])
    assert q[2] + (q[1] - q[0]) < 1.0


def test_copies_do_not_count_as_peers(clean):
    """Five copies of one shifted episode would make its lag look usual for the task; the copies
    are reported as duplicates and left out of the peers, so the shift is still found."""
    ctx = injection_context(clean)
    shifted = FAULTS["action.time_shift"].inject(clean[3], np.random.default_rng(0), 4, None, ctx)
    shifted.index = 10
    eps = list(clean[:10]) + [shifted]
    for k in range(5):
        copy_ = copy.deepcopy(shifted)
        copy_.index = 11 + k
        eps.append(copy_)
    rep = audit_arrays(eps, S.FPS, action_names=NAMES)
    assert rep.episode(10).has("action.time_shift")
    assert all(rep.episode(11 + k).has("episode.duplicate") for k in range(5))


def test_held_gripper_episodes_do_not_set_the_residual_unit(clean):
    """Most episodes keep the gripper open (their gripper fit is exact): the dim's typical residual
    must still be the one of the episodes in which it moves, or a slight finger motion elsewhere
    would read as a large relative error."""
    from vla.data.audit.action_model import fit_action_model

    held = []
    for e in clean[:10]:
        e = copy.deepcopy(e)
        e.action[:, 3] = -1.0          # never closes ...
        e.state[:, 3] = 1.0            # ... so the fingers stay open
        held.append(e)
    moving = clean[10:]
    ref = fit_action_model([e.state for e in moving], [e.action for e in moving]).dims[3].resid
    mixed = fit_action_model([e.state for e in held + moving], [e.action for e in held + moving]).dims[3].resid
    assert ref > 0
    assert 0.5 < mixed / ref < 2.0
