"""FailureMonitor: each signal separates a failing synthetic trajectory from a succeeding one; the conformal
calibration holds its false-alarm rate on held-out successes; streaming equals replay; save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla.serve.monitor import FailureMonitor, MonitorCalibration, MonitorError, calibrate, conformal_threshold
from vla.serve.monitor_signals import SIGNALS, FeatureBank, SignalConfig, SignalTracker

H, STEPS = 8, 120


def rollout(rng: np.random.Generator, failure: str | None = None, start_fail: int = 20,
            bank_shift: float = 0.0) -> list[dict[str, float]]:
    """A point robot drives toward a goal with 3-D velocity actions; a chunk of H actions is planned every 4
    steps. ``failure`` breaks one thing from ``start_fail`` on: the state sticks ("stall"), it swings back and
    forth ("oscillation"), consecutive chunks disagree ("inconsistency"), the features leave the training
    distribution ("ood"), or the sampled chunks scatter ("spread")."""
    tracker = SignalTracker(SignalConfig(window=10), BANK)
    goal = rng.uniform(-1, 1, 3)
    s = rng.uniform(-1, 1, 3)
    out, plan = [], None
    for t in range(STEPS):
        failing = failure is not None and t >= start_fail
        if t % 4 == 0:
            direction = np.clip(goal - s, -1, 1)
            if failing and failure == "inconsistency":
                direction = rng.uniform(-1, 1, 3)
            plan = np.tile(direction, (H, 1)) + rng.normal(0, 0.02, (H, 3))
            feat = rng.normal(0, 1, 16) + (3.0 if failing and failure == "ood" else 0.0)
            samples = plan[None] + rng.normal(0, 0.5 if failing and failure == "spread" else 0.02, (4, H, 3))
            tracker.on_chunk(plan, t, features=feat, samples=samples)
        a = plan[t % 4]
        if failing and failure == "stall":
            s_next = s + rng.normal(0, 1e-4, 3)
        elif failing and failure == "oscillation":
            s_next = s + 0.05 * (1 if (t // 3) % 2 else -1) * np.ones(3)
        else:
            s_next = s + 0.05 * a
        out.append(tracker.on_step(s, a))
        s = s_next
    return out


BANK = FeatureBank.fit(np.random.default_rng(123).normal(0, 1, (500, 16)))


@pytest.mark.parametrize("signal", SIGNALS)
def test_each_signal_separates_a_failing_trajectory_from_a_succeeding_one(signal):
    for seed in range(5):
        ok = rollout(np.random.default_rng(seed))
        bad = rollout(np.random.default_rng(seed), failure=signal)
        ok_max = max(r[signal] for r in ok)
        bad_late = np.median([r[signal] for r in bad[40:]])
        assert bad_late > 1.5 * ok_max + 1e-9, (signal, seed, ok_max, bad_late)


def test_calibration_holds_its_false_alarm_rate_on_held_out_successes_and_catches_failures():
    rng = np.random.default_rng(0)
    alpha = 0.1
    cal = calibrate([rollout(rng) for _ in range(200)], alpha=alpha)
    assert np.isfinite(cal.threshold) and cal.episodes == {"scales": 100, "threshold": 100}
    held = [rollout(rng) for _ in range(200)]
    false_alarms = np.mean([cal.scores(ep).max() > cal.threshold for ep in held])
    sigma = np.sqrt(alpha * (1 - alpha) / len(held))
    assert false_alarms <= alpha + 3 * sigma, false_alarms
    assert false_alarms >= alpha - 4 * sigma - 0.02, f"threshold too loose to be calibrated: {false_alarms}"
    for failure in ("stall", "oscillation", "inconsistency", "ood"):
        caught = np.mean([cal.scores(rollout(rng, failure)).max() > cal.threshold for _ in range(20)])
        assert caught >= 0.9, (failure, caught)


def test_conformal_threshold_is_the_finite_sample_quantile():
    x = np.arange(1, 20, dtype=float)  # n = 19: ceil(20 * 0.9) = 18th smallest
    assert conformal_threshold(x, 0.1) == 18.0
    assert conformal_threshold(x[:5], 0.1) == float("inf")  # too few episodes for a 10% guarantee


def test_streaming_monitor_equals_replay_and_reports_the_first_alarm():
    rng = np.random.default_rng(1)
    cal = calibrate([rollout(rng) for _ in range(40)], alpha=0.2)
    mon = FailureMonitor(cal, SignalConfig(window=10), BANK)
    goal, s = np.full(3, 0.8), np.zeros(3)
    raws, scores = [], []
    for t in range(60):
        plan = np.tile(np.clip(goal - s, -1, 1), (H, 1))
        if t % 4 == 0:
            mon.on_chunk(plan, t, features=rng.normal(0, 1, 16))
        rec = mon.step(s, plan[0])
        raws.append(rec.signals)
        scores.append(rec.score)
        if t < 20:
            s = s + 0.05 * plan[0]  # then it sticks
    assert np.allclose(scores, cal.scores(raws))
    assert mon.first_alarm_step is not None and 20 < mon.first_alarm_step < 60 and mon.alarms > 0


def test_uncalibrated_monitor_reports_signals_without_alarms():
    mon = FailureMonitor()
    for _ in range(15):
        rec = mon.step(np.zeros(3), np.ones(3))
    assert rec.alarm is False and rec.score == 0.0 and rec.signals["stall"] > 0


def test_calibration_saves_loads_and_names_what_is_wrong(tmp_path):
    rng = np.random.default_rng(2)
    cal = calibrate([rollout(rng) for _ in range(8)], alpha=0.3, weights={"stall": 2.0, "inconsistency": 1.0})
    cal.save(tmp_path / "monitor.json")
    assert MonitorCalibration.load(tmp_path / "monitor.json") == cal
    (tmp_path / "bad.json").write_text(json.dumps({**cal.to_dict(), "weights": {"vibes": 1.0}}))
    with pytest.raises(MonitorError, match="vibes"):
        MonitorCalibration.load(tmp_path / "bad.json")
    with pytest.raises(MonitorError, match="threshold"):
        MonitorCalibration.from_dict({"center": {}, "spread": {}, "weights": {}})
    with pytest.raises(MonitorError, match="unknown signal"):
        calibrate([rollout(rng) for _ in range(4)], weights={"vibes": 1.0})
    with pytest.raises(MonitorError, match="at least 4"):
        calibrate([rollout(rng)])
