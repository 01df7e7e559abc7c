"""The independent limit check agrees with hand-made cases, and finds no violation in the filter's output."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vla.serve.safety import SafetyConfig, SafetyFilter
from vla.serve.safety_check import limit_violations

SAWYER = SafetyConfig.for_metaworld_sawyer()


def test_hand_made_violations_are_named():
    state = np.array([0.0, 0.6, 0.005, 1.0], np.float32)  # hand 5 mm above the table
    assert limit_violations(SAWYER, np.zeros(4, np.float32), state) == []
    assert limit_violations(SAWYER, np.array([0, 0, -1.0, 0], np.float32), state) == ["keep_out.table"]
    assert limit_violations(SAWYER, np.array([np.nan, 0, 0, 0], np.float32), state) == ["nonfinite"]
    assert "range.dx" in limit_violations(SAWYER, np.array([1.5, 0, 0, 0], np.float32), state)
    edge = np.array([0.498, 0.6, 0.2, 1.0], np.float32)
    assert limit_violations(SAWYER, np.array([1.0, 0, 0, 0], np.float32), edge) == ["workspace"]
    outside = np.array([0.6, 0.6, 0.2, 1.0], np.float32)  # already outside: moving back in is fine
    assert limit_violations(SAWYER, np.array([-1.0, 0, 0, 0], np.float32), outside) == []


finite = st.floats(-5, 5, allow_nan=False, width=32)
wild = st.one_of(finite, st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(wild, min_size=4, max_size=4),
                          st.tuples(st.floats(-0.7, 0.7), st.floats(0.2, 1.2), st.floats(-0.3, 0.7))),
                min_size=1, max_size=12))
def test_filtered_actions_never_violate_a_hard_limit(steps):
    f = SafetyFilter(SAWYER)
    for action, xyz in steps:
        state = np.array([*xyz, 0.5], np.float32)
        safe, _ = f.filter(np.array(action, np.float32), state)
        assert limit_violations(SAWYER, safe, state) == [], (action, xyz, safe)
