"""Sign/scale checks on a contact-heavy task: while the hand is blocked (pushing a door) the action
keeps commanding motion the states do not show, so a clean episode keeps a large residual that no
slope removes. A mis-scaled or negated dim must still be reported as a scale/sign error (undoing the
slope relative to the peers makes the dim as clean as theirs; the negated case guards the plain
negation undo), a dim whose actions are partly replaced must not pass for a scale error, and a
better fit at some shift is not a time shift while the actions stay incoherent with the states."""

from __future__ import annotations

import numpy as np
import pytest

from vla.data.audit import audit_arrays
from vla.data.audit import synthetic as S

NAMES = ["dx", "dy", "dz", "gripper"]


def _blocked(ep, rng):
    """Hold the hand's x still over a window while the dx action keeps pushing at full command."""
    n = ep.length
    w0 = int(rng.integers(n // 4, n // 2))
    w = slice(w0, w0 + n // 8)
    d = np.diff(ep.state[:, 0])
    d[w] = 0.0
    ep.state[1:, 0] = ep.state[0, 0] + np.cumsum(d)
    ep.action[w, 0] = np.sign(ep.action[w, 0].mean() or 1.0)
    return ep


@pytest.fixture(scope="module")
def contact():
    """24 episodes, two tasks: the door task's hand is blocked for an eighth of each episode."""
    rng = np.random.default_rng(11)
    raw = S.dataset(24, seed=7, tasks=["open the door", "reach the goal"])
    return [_blocked(e.arrays(i), rng) if e.task == "open the door" else e.arrays(i) for i, e in enumerate(raw)]


def _with(eps, i, fn):
    out = list(eps)
    e = eps[i]
    from vla.data.audit.inject import _copy

    c = _copy(e)
    fn(c)
    out[i] = c
    return out


def test_scaled_dim_with_contact_is_a_scale_error(contact):
    for k in (0, 2, 4):     # door episodes: the slope fit alone leaves > 70 % of their residual
        eps = _with(contact, k, lambda e: e.action.__setitem__((slice(None), 0), 2 * e.action[:, 0]))
        rep = audit_arrays(eps, S.FPS, action_names=NAMES)
        f = [f for f in rep.episode(k).findings if f.type == "action.scale_error"]
        assert f and f[0].details["dim"] == 0, rep.episode(k).findings
        assert [x for e in rep.episodes if e.episode != k for x in e.findings] == []


def test_negated_dim_with_contact_is_a_sign_error(contact):
    eps = _with(contact, 2, lambda e: e.action.__setitem__((slice(None), 0), -e.action[:, 0]))
    rep = audit_arrays(eps, S.FPS, action_names=NAMES)
    assert rep.episode(2).has("action.sign_error"), rep.episode(2).findings


def test_partly_replaced_dim_is_not_a_scale_error(contact):
    """70 % of dim 2 replaced by another episode's (resampled, small) dz actions: the slope drops to
    ~0.3 and a slope fit leaves little residual, but dividing by the slope blows the foreign part up,
    so this is an inconsistent label, not a mis-scaled dim."""
    donor = contact[3].action

    def relabel(e):
        n = e.length
        w = int(0.7 * n)
        i0 = (n - w) // 2
        t = np.linspace(0, len(donor) - 1, w)
        e.action[i0:i0 + w, 2] = 0.3 * np.interp(t, np.arange(len(donor)), donor[:, 2])

    eps = _with(contact, 4, relabel)
    rep = audit_arrays(eps, S.FPS, action_names=NAMES)
    assert not rep.episode(4).has("action.scale_error"), rep.episode(4).findings
    assert rep.episode(4).has("action.inconsistent"), rep.episode(4).findings


def test_incoherent_actions_are_not_a_time_shift():
    """A shift that lowers the residual but leaves the actions as poorly correlated with the states
    as before (correlation 0.6 at every shift, peers ~0.95) is relabelled actions, not a shift."""
    from types import SimpleNamespace

    from vla.data.audit import EpisodeArrays
    from vla.data.audit import action_checks as ac

    n = 80
    ep = EpisodeArrays(0, np.arange(n) / 20.0, np.zeros((n, 3)), np.zeros((n, 3)))
    shifts = np.arange(-ac.TUNING.shift_search, ac.TUNING.shift_search + 1)
    curve = 1.0 + 0.1 * (shifts + 3.0) ** 2        # best alignment 3 frames late, gain 0.53
    mom = np.tile([0.6, 1.0, 1.0], (len(shifts), 1))   # correlation 0.6 at every shift
    stats = [ac.DimStats(j, 1.5, 2.0, (0, 10), 1.0, 1.4, -3, 1.0, curve.copy(), mom.copy()) for j in range(3)]
    model = SimpleNamespace(dims=[SimpleNamespace(r2=0.95, resid=1.0) for _ in range(3)])
    th = ac.RelationThresholds(resid=3.0, roll=4.0, lags=[0.0] * 10, coherence=0.2, coherence_med=0.05)
    types = [f.type for f in ac.check_relation(ep, stats, th, model)]
    assert "action.time_shift" not in types
    assert "action.inconsistent" in types
    # the same curve with coherent actions is a shift
    coherent = [ac.DimStats(d.j, d.resid, d.roll, d.roll_at, d.gamma, d.gamma_resid, d.shift, d.shift_resid,
                            d.shift_curve, np.tile([0.97, 1.0, 1.0], (len(shifts), 1))) for d in stats]
    assert [f.type for f in ac.check_relation(ep, coherent, th, model)] == ["action.time_shift"]
