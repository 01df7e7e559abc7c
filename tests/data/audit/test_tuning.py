"""The action checks' tuning is one frozen ``ActionTuning``; the checks and the peer thresholds read
it (the default is what the audit benchmark was run with)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vla.data.audit import action_checks as ac
from vla.data.audit.episode import EpisodeArrays


def _flip_flop_episode() -> EpisodeArrays:
    g = np.zeros(60)
    g[20:22] = g[24:26] = g[28:30] = 1.0      # three short closes: 5 toggles within 10 frames
    g[40:] = 1.0
    return EpisodeArrays(0, np.arange(60) / 20.0, action=np.stack([np.zeros(60), g], axis=1))


def test_tuning_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ac.TUNING.resid_floor = 1.0  # type: ignore[misc]


def test_gripper_check_reads_its_tuning():
    ep = _flip_flop_episode()
    levels = {1: (0.0, 1.0)}
    assert [f.type for f in ac.check_gripper(ep, [1], levels, 20.0)] == ["action.gripper_flip_flop"]
    strict = dataclasses.replace(ac.TUNING, flip_min_short=6)
    assert ac.check_gripper(ep, [1], levels, 20.0, strict) == []


def test_peer_thresholds_use_the_tuning_floors_and_factor():
    def summary(resid: float) -> ac.RelationSummary:
        return ac.RelationSummary([], (resid, 2 * resid), None, None, {})

    th = ac.peer_thresholds([summary(r) for r in (0.5, 1.0, 1.2)])
    assert (th.resid, th.roll) == (ac.TUNING.threshold_factor * 1.0, ac.TUNING.threshold_factor * 2.0)
    high = dataclasses.replace(ac.TUNING, resid_floor=9.0, roll_floor=10.0)
    th = ac.peer_thresholds([summary(r) for r in (0.5, 1.0, 1.2)], high)
    assert (th.resid, th.roll) == (9.0, 10.0)
    assert ac.peer_thresholds([], high).resid == 9.0
