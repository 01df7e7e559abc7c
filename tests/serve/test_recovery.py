"""RecoveryController: safety invariants (hypothesis: the budget is never exceeded, actions stay in bounds,
``stop`` holds) and what each strategy does to the robot and to the action queue."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla.serve.recovery import STRATEGIES, RecoveryConfig, RecoveryController, RecoveryError


class FakeSource:
    """A policy queue: returns the given actions in turn, counts flushes and ensembling switches."""

    def __init__(self, actions: list[np.ndarray]) -> None:
        self.actions, self.i = actions, 0
        self.flushes, self.ensembling = 0, []

    def next_action(self) -> np.ndarray:
        a = self.actions[self.i % len(self.actions)]
        self.i += 1
        return a

    def flush(self) -> None:
        self.flushes += 1

    def set_ensembling(self, coeff: float | None) -> None:
        self.ensembling.append(coeff)


finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
wild = st.one_of(finite, st.just(float("nan")), st.just(float("inf")), st.just(-float("inf")))


@settings(max_examples=150, deadline=None)
@given(strategy=st.sampled_from(STRATEGIES), budget=st.integers(0, 4), cooldown=st.integers(0, 6),
       alarms=st.lists(st.booleans(), min_size=1, max_size=120),
       actions=st.lists(st.lists(wild, min_size=4, max_size=4), min_size=1, max_size=8),
       states=st.lists(st.lists(finite, min_size=4, max_size=4), min_size=1, max_size=8))
def test_budget_bounds_and_stop_hold_whatever_the_alarms_states_and_policy(strategy, budget, cooldown, alarms,
                                                                         actions, states):
    cfg = RecoveryConfig(strategy, budget=budget, cooldown=cooldown, retreat_steps=3, replan_steps=4,
                         home_max_steps=5)
    ctl = RecoveryController(cfg, 4)
    source = FakeSource([np.array(a) for a in actions])
    ctl.reset(np.array(states[0]))
    stopped_at = None
    held = None
    for t, alarm in enumerate(alarms):
        d = ctl.act(np.array(states[t % len(states)]), alarm, source)
        assert d.action.shape == (4,) and d.action.dtype == np.float32
        assert np.isfinite(d.action).all() and (d.action >= -1).all() and (d.action <= 1).all()
        assert ctl.used <= budget and len(ctl.events) == ctl.used
        if stopped_at is not None:  # once stopped, always stopped, holding still with the same gripper command
            assert d.stop and d.kind == "stop" and np.array_equal(d.action, held)
            assert np.all(d.action[:3] == 0)
        elif d.stop:
            stopped_at, held = t, d.action.copy()
            assert strategy == "stop" and alarm and budget >= 1 and np.all(d.action[:3] == 0)
    if strategy == "stop" and stopped_at is None:
        assert budget == 0 or not any(alarms)


def test_no_alarm_means_the_policy_acts_every_step():
    source = FakeSource([np.array([0.3, -0.2, 0.1, 2.0])])
    ctl = RecoveryController(RecoveryConfig("retry"), 4)
    for _ in range(20):
        d = ctl.act(np.zeros(4), False, source)
        assert d.kind == "policy" and np.allclose(d.action, [0.3, -0.2, 0.1, 1.0])  # clipped into bounds
    assert ctl.used == 0 and source.flushes == 0


@pytest.mark.parametrize("opening, opens", [(0.29, True), (0.45, False), (1.0, True)])
def test_retry_backs_off_up_and_away_opens_an_empty_gripper_then_flushes_and_requeries(opening, opens):
    cfg = RecoveryConfig("retry", budget=1, retreat_steps=5, cooldown=3)
    ctl = RecoveryController(cfg, 4)
    source = FakeSource([np.array([0.8, 0.0, -0.2, 1.0])])  # heading +x, gripper closing
    state = np.array([0.0, 0.6, 0.1, opening])
    for _ in range(3):
        assert ctl.act(state, False, source).kind == "policy"
    asked = source.i
    kinds = []
    for _ in range(5):
        d = ctl.act(state, True, source)
        kinds.append(d.kind)
        assert d.action[2] > 0 and d.action[0] < 0  # up, and away from where the policy was heading
        assert d.action[3] == (-1.0 if opens else 1.0)
    assert kinds == ["retry"] * 5 and source.i == asked  # the policy was not asked while backing off
    assert source.flushes == 1 and ctl.used == 1
    assert ctl.act(state, True, source).kind == "policy"  # re-queried; budget spent, alarm ignored


def test_replan_flushes_and_ensembles_for_k_steps_then_restores_the_queue():
    cfg = RecoveryConfig("replan", budget=1, replan_steps=4, ensemble_coeff=0.05)
    ctl = RecoveryController(cfg, 4)
    source = FakeSource([np.array([0.1, 0.1, 0.1, 0.0])])
    ctl.act(np.zeros(4), False, source)
    kinds = [ctl.act(np.zeros(4), True, source).kind for _ in range(4)]
    assert kinds == ["replan"] * 4 and source.ensembling == [0.05, None] and source.flushes == 2
    assert ctl.act(np.zeros(4), True, source).kind == "policy"


def test_home_drives_a_point_robot_back_to_the_start_then_resumes():
    cfg = RecoveryConfig("home", budget=1, home_max_steps=100, home_tolerance=0.005)
    ctl = RecoveryController(cfg, 4)
    start = np.array([0.0, 0.6, 0.2, 1.0])
    ctl.reset(start)
    s = np.array([0.15, 0.8, 0.05, 0.4])
    source = FakeSource([np.zeros(4)])
    kinds = []
    for t in range(100):
        d = ctl.act(s, t == 0, source)
        kinds.append(d.kind)
        if d.kind == "policy" and t > 0:
            break
        s = s.copy()
        s[:3] += 0.01 * d.action[:3]  # MetaWorld-like: an action of 1 moves 1 cm
    assert kinds[0] == "home" and kinds[-1] == "policy" and len(kinds) < 100
    assert np.linalg.norm(s[:3] - start[:3]) < 0.01 and source.flushes == 1


def test_cooldown_ignores_alarms_right_after_a_recovery():
    cfg = RecoveryConfig("replan", budget=3, replan_steps=2, cooldown=5)
    ctl = RecoveryController(cfg, 4)
    source = FakeSource([np.zeros(4)])
    kinds = [ctl.act(np.zeros(4), True, source).kind for _ in range(9)]
    assert kinds == ["replan", "replan"] + ["policy"] * 5 + ["replan", "replan"]
    assert [e["step"] for e in ctl.events] == [0, 7]


def test_bad_settings_are_refused_by_name():
    with pytest.raises(RecoveryError, match="strategy"):
        RecoveryConfig("pray")
    with pytest.raises(RecoveryError, match="budget"):
        RecoveryConfig("retry", budget=-1)
    with pytest.raises(RecoveryError, match="retreat_steps"):
        RecoveryConfig("retry", retreat_steps=0)
    with pytest.raises(RecoveryError, match="out of range"):
        RecoveryController(RecoveryConfig("retry"), 2)
