"""The report's monitor and recovery figures on known inputs: AUROC against a brute-force pair count, the
"at f of the step budget" populations, lead times, false alarms, the paired recovery interval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla.eval.monitor_report import auroc, monitor_section, paired_difference_interval, prefix_max, recovery_section


def brute_force_auroc(pos, neg) -> float:
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@settings(max_examples=200, deadline=None)
@given(pos=st.lists(st.integers(0, 6), min_size=1, max_size=30),
       neg=st.lists(st.integers(0, 6), min_size=1, max_size=30))
def test_auroc_equals_the_brute_force_pair_count_with_ties(pos, neg):
    assert auroc(np.array(pos) / 2, np.array(neg) / 2) == pytest.approx(brute_force_auroc(pos, neg), abs=1e-12)


def test_auroc_known_values():
    assert auroc([3, 4], [1, 2]) == 1.0 and auroc([1, 2], [3, 4]) == 0.0
    assert auroc([1, 3], [2, 2]) == 0.5 and auroc([2], [2]) == 0.5
    assert auroc([2, 3], [1, 2.5]) == 0.75
    assert auroc([], [1.0]) is None and auroc([1.0], []) is None


def test_prefix_max_skips_steps_the_monitor_did_not_judge():
    assert prefix_max([0.1, None, 0.5, 0.9], 3) == 0.5
    assert prefix_max([None, None], 2) == 0.0 and prefix_max([], 5) == 0.0


@dataclass
class R:
    task: str
    episode: int
    success: bool
    steps: int
    monitor: dict
    recovery: dict | None = None


def ep(task, i, success, steps, score, first_alarm=None, cost=0.001):
    score = list(score) + [score[-1]] * (steps - len(score))
    return R(task, i, success, steps, {"score": score[:steps], "signals": {"stall": score[:steps]},
                                       "first_alarm": first_alarm, "cost_s": [cost] * steps, "sample_s": []})


CAL = {"threshold": 0.5, "alpha": 0.1, "weights": {"stall": 1.0}, "source": {"tasks": ["a"]}}


def test_monitor_section_populations_lead_time_and_false_alarms():
    # max_steps 100: "50%" is after 50 steps. Failures run to 100 steps.
    results = [
        ep("a", 0, True, 20, [0.9]),                         # finished before 50, scored high: only in "all"
        ep("a", 1, True, 80, [0.2] * 60 + [0.4], first_alarm=None),
        ep("a", 2, False, 100, [0.1] * 30 + [0.7], first_alarm=30),
        ep("b", 0, False, 100, [0.3] * 60 + [0.8], first_alarm=60),  # high only after 50 steps
        ep("b", 1, True, 70, [0.25] * 70, first_alarm=None),
    ]
    m = monitor_section(results, ["a", "b"], 100, CAL, "cal.json", 80.0)
    at = m["overall"]["at"]["50%"]
    assert at["step"] == 50 and at["failures_running"] == 2 and at["successes_running"] == 2
    # running after 50 steps: failures score 0.7, 0.3; successes 0.2, 0.25 -> 4 of 4 pairs
    assert at["auroc"] == 1.0
    # all: plus the early success scoring 0.9, above both failures -> 4 of 6 pairs
    assert at["auroc_all"] == pytest.approx(4 / 6, abs=1e-4)
    assert at["signals"]["stall"]["auroc"] == 1.0
    # on each episode's own clock (first half of its own steps): failures 0.7 / 0.3 (max), 0.34 / 0.3 (mean);
    # successes 0.9, 0.2, 0.25 either way -> 4 of 6 pairs
    assert at["auroc_own"] == pytest.approx(4 / 6, abs=1e-4) and at["auroc_own_mean"] == pytest.approx(4 / 6, abs=1e-4)
    assert at["signals"]["stall"]["auroc_own"] == at["auroc_own"]
    assert m["overall"]["at"]["25%"]["step"] == 25
    o = m["overall"]
    assert o["detected_failures"] == 2 and o["detection_rate"] == 1.0
    assert o["median_lead_steps"] == pytest.approx(((100 - 31) + (100 - 61)) / 2)
    assert o["median_lead_s"] == pytest.approx(o["median_lead_steps"] / 80, abs=1e-3)
    assert o["false_alarms"]["episodes"] == 0 and o["false_alarms"]["successes"] == 3
    assert o["cost_ms"]["step_p50"] == pytest.approx(1.0)
    assert m["tasks"]["a"]["calibrated_on_task"] and not m["tasks"]["b"]["calibrated_on_task"]
    assert m["heldout_tasks"]["episodes"] == 2 and m["tasks"]["a"]["episodes"] == 3


def test_own_clock_maximum_grows_with_length_and_the_mean_does_not():
    spike = [0.1] * 40 + [0.6] + [0.1] * 59
    results = [ep("a", 0, False, 100, spike), ep("a", 1, True, 10, [0.3])]
    at = monitor_section(results, ["a"], 100, CAL, "cal.json", 80.0)["overall"]["at"]["50%"]
    assert at["auroc_own"] == 1.0  # the long failure's first half holds the spike
    assert at["auroc_own_mean"] == 0.0  # its mean score (0.11) is below the success's 0.3


def test_paired_difference_interval():
    same = [(True, True)] * 5 + [(False, False)] * 5
    d, lo, hi = paired_difference_interval(same)
    assert d == 0 and lo < 0 < hi
    pairs = [(False, True)] * 4 + [(True, True)] * 3 + [(False, False)] * 3
    d, lo, hi = paired_difference_interval(pairs)
    assert d == pytest.approx(0.4) and 0 < lo < 0.4 < hi <= 1
    d2, lo2, hi2 = paired_difference_interval([(b, a) for a, b in pairs])
    assert d2 == pytest.approx(-0.4) and lo2 == pytest.approx(-hi) and hi2 == pytest.approx(-lo)


def test_recovery_section_counts_gains_losses_and_recoveries():
    rs = []
    for i, (base, rec, used) in enumerate([(False, True, 1), (False, False, 2), (True, True, 0), (True, False, 1)]):
        r = ep("a", i, base, 50, [0.1])
        r.recovery = {"success": rec, "stopped": False, "rerun": used > 0, "replay_consistent": True,
                      "recoveries": [{"step": 3, "strategy": "retry"}] * used}
        rs.append(r)
    sec = recovery_section(rs, ["a"], {"strategy": "retry", "budget": 2})
    o = sec["overall"]
    assert o["without"]["successes"] == 2 and o["with"]["successes"] == 2 and o["gain"] == 0.0
    assert o["gained"] == 1 and o["lost"] == 1 and o["rerun"] == 3
    assert o["recoveries_per_episode"] == 1.0 and o["recoveries_histogram"] == {"0": 1, "1": 2, "2": 1}
