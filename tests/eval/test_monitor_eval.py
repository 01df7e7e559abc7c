"""`vla monitor calibrate` and `vla eval --monitor [--recovery]` end to end on MetaWorld reach with a tiny
randomly initialised policy; a scripted-expert stand-in makes chosen episodes succeed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vla.cli import app
from vla.eval.calibrate import calibration_jobs, min_threshold_episodes
from vla.eval.runner import evaluate
from vla.models import NormalizationStats, Policy, PolicyConfig
from vla.serve.monitor import MonitorCalibration, MonitorError
from vla.sim import make_suite
from vla.sim.seeds import is_calibration_seed

TASK = "reach-v3"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    stats = NormalizationStats.from_arrays(rng.normal(size=(64, 4)).astype(np.float32),
                                           rng.uniform(-1, 1, size=(64, 4)).astype(np.float32))
    cfg = PolicyConfig(cameras=["corner4"], image_size=64, d_model=32, layers=1, heads=2, chunk=4, n_action_steps=2)
    run = tmp_path_factory.mktemp("run")
    Policy(cfg, stats).save(run / "policy")
    return run


class ExpertStandIn:
    """Runs the policy (its chunks, features and timing go through the monitor as usual) and executes the
    scripted expert's action instead: in every episode (mode "all") or in those whose goal lies at negative x
    (mode "half"), so outcomes depend on the seed only."""

    mode = "all"

    def __init__(self, inner: Policy) -> None:
        self.inner = inner
        self._expert: bool | None = None

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def reset(self, seed: int | None = None) -> None:
        self.inner.reset(seed=seed)
        self._expert = None

    def select_action(self, obs):
        from vla.eval import rollout

        own = np.asarray(self.inner._selector.next(lambda: self.predict_chunk(obs)), np.float32)
        expert = rollout._STATE["env"].expert_action()
        if self._expert is None:
            self._expert = ExpertStandIn.mode == "all" or bool(expert[0] < 0)
        return expert if self._expert else own


@pytest.fixture
def stand_in(monkeypatch):
    original = Policy.from_pretrained.__func__
    monkeypatch.setattr(Policy, "from_pretrained",
                        classmethod(lambda cls, d, device="cpu": ExpertStandIn(original(cls, d))))
    ExpertStandIn.mode = "all"
    return ExpertStandIn


@pytest.fixture(scope="module")
def calibration(tiny_run, tmp_path_factory):
    """A calibration from 6 expert-driven reach rollouts (alpha 0.5: 2 for the feature bank, 2 + 2)."""
    mp = pytest.MonkeyPatch()
    original = Policy.from_pretrained.__func__
    mp.setattr(Policy, "from_pretrained", classmethod(lambda cls, d, device="cpu": ExpertStandIn(original(cls, d))))
    ExpertStandIn.mode = "all"
    out = tmp_path_factory.mktemp("cal") / "monitor.json"
    try:
        result = CliRunner().invoke(app, ["monitor", "calibrate", "--policy", str(tiny_run), "--suite", f"mt1:{TASK}",
                                          "--episodes-per-task", "6", "--alpha", "0.5", "--workers", "1",
                                          "--max-steps", "60", "--out", str(out), "--json"])
    finally:
        mp.undo()
    assert result.exit_code == 0, result.output
    return out, json.loads(result.output)


def test_calibration_from_rollouts_writes_valid_json(calibration, tiny_run):
    path, summary = calibration
    text = path.read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    cal = MonitorCalibration.load(path)
    assert np.isfinite(cal.threshold) and cal.threshold == summary["threshold"] and cal.alpha == 0.5
    # 6 successes dealt out in turn: 2 for the feature bank, the other 4 half to scales, half to the threshold
    assert cal.episodes == {"scales": 2, "threshold": 2, "feature_bank": 2, "successes": 6, "rollouts": 6}
    assert set(cal.weights) == {"inconsistency", "stall", "oscillation", "ood"}  # spread needs --samples
    assert len(data["feature_bank"]["mean"]) == 32 and np.asarray(data["feature_bank"]["precision"]).shape == (32, 32)
    assert cal.config().state_dims == (0, 1, 2) and cal.source["tasks"] == [TASK]
    assert cal.source["policy"] == str(tiny_run / "policy") and cal.source["success_rate"] == 1.0
    assert not list(path.parent.glob(".*tmp"))  # no temporary file left beside it
    jobs = calibration_jobs(make_suite(f"mt1:{TASK}"), [TASK], 6, 0)
    assert all(is_calibration_seed(j.seed) for j in jobs) and len({j.seed for j in jobs}) == 6


def test_calibration_refuses_bad_input_with_a_clear_error(tiny_run, tmp_path, stand_in):
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, ["monitor", "calibrate", "--policy", str(tiny_run), "--suite", f"mt1:{TASK}",
                                   "--workers", "1", "--out", str(tmp_path / "m.json"), *args])

    r = run("--tasks", "hammer-v3")
    assert r.exit_code == 2 and "hammer-v3" in r.output and "not in suite" in r.output
    r = run("--alpha", "1.5")
    assert r.exit_code == 2 and "alpha" in r.output
    r = run("--episodes-per-task", "3", "--alpha", "0.1")
    assert r.exit_code == 2 and "too few even if every episode succeeds" in r.output
    r = run("--signals", "vibes")
    assert r.exit_code == 2 and "vibes" in r.output
    r = run("--out", str(tmp_path / "missing" / "m.json"), "--episodes-per-task", "30")
    assert r.exit_code == 2 and "does not exist" in r.output
    # a policy that never succeeds: rollouts run, then the calibration is refused and nothing is written
    stand_in.mode = "never"
    stand_in_select = ExpertStandIn.select_action
    ExpertStandIn.select_action = lambda self, obs: np.asarray(self.inner.select_action(obs), np.float32)
    try:
        need = 3 * min_threshold_episodes(0.5)
        r = run("--episodes-per-task", str(need), "--alpha", "0.5", "--max-steps", "3")
    finally:
        ExpertStandIn.select_action = stand_in_select
    assert r.exit_code == 2 and f"0 of {need} rollouts succeeded" in r.output
    assert not (tmp_path / "m.json").exists() and not list(tmp_path.iterdir())


def test_eval_with_monitor_and_recovery_end_to_end(calibration, tiny_run, tmp_path, stand_in):
    path, _ = calibration
    stand_in.mode = "half"
    plain = evaluate(tiny_run, suite=f"mt1:{TASK}", episodes_per_task=2, out=tmp_path / "plain", workers=1,
                     max_steps=60, seed=5, videos=False, progress=False)
    out = tmp_path / "eval"
    r = CliRunner().invoke(app, ["eval", "--policy", str(tiny_run), "--suite", f"mt1:{TASK}", "--episodes-per-task",
                                 "2", "--out", str(out), "--workers", "1", "--max-steps", "60", "--seed", "5",
                                 "--no-videos", "--monitor", str(path), "--recovery", "retry",
                                 "--recovery-budget", "1"])
    assert r.exit_code == 0, r.output
    assert "monitor: AUROC" in r.output and "recovery retry" in r.output
    report = json.loads((out / "report.json").read_text())
    # watching does not change the rollouts: the monitored run is the plain evaluation, step for step
    outcomes = [(e["success"], e["steps"]) for e in report["per_episode"]]
    assert outcomes == [(e["success"], e["steps"]) for e in plain["per_episode"]]
    assert outcomes[0] == (False, 60) and outcomes[1][0] is True
    m = report["monitor"]
    assert m["threshold"] == MonitorCalibration.load(path).threshold and m["calibration_tasks"] == [TASK]
    for sec in (m["overall"], m["tasks"][TASK]):
        assert set(sec["at"]) == {"25%", "50%", "75%"}
        assert [sec["at"][p]["step"] for p in ("25%", "50%", "75%")] == [15, 30, 45]
        assert set(sec["at"]["50%"]["signals"]) == set(m["weights"])
        assert sec["false_alarms"]["successes"] == 1 and sec["cost_ms"]["step_p50"] > 0
    assert m["heldout_tasks"] is None
    steps = 0
    for e in report["per_episode"]:
        assert len(e["monitor"]["score"]) == e["steps"] and all(v is not None for v in e["monitor"]["score"])
        steps += e["steps"]
        rec = e["recovery"]
        assert len(rec["recoveries"]) <= 1 and rec["steps"] <= 60 and rec["replay_consistent"]
        if e["monitor"]["first_alarm"] is None:  # no alarm: the same outcome, not run again
            assert not rec["rerun"] and rec["success"] == e["success"]
        else:
            steps += rec["steps"]
    lines = (out / "monitor_steps.jsonl").read_text().splitlines()
    assert len(lines) == steps
    first = json.loads(lines[0])
    assert set(first) == {"task", "episode", "run", "step", "kind", "score", "alarm", "signals"}
    rec = report["recovery"]
    assert rec["strategy"] == "retry" and rec["budget"] == 1 and rec["overall"]["episodes"] == 2
    assert rec["overall"]["without"]["successes"] == 1
    # the random policy's episode raised an alarm and was run again with one retry
    assert report["per_episode"][0]["monitor"]["first_alarm"] is not None and rec["overall"]["rerun"] >= 1
    assert report["per_episode"][0]["recovery"]["recoveries"][0]["strategy"] == "retry"
    html = (out / "report.html").read_text()
    assert "Failure monitor" in html and "Recovery: retry" in html and html.count("data:image/png;base64,") == 2


def test_eval_monitor_flags_are_checked(tiny_run, tmp_path):
    r = CliRunner().invoke(app, ["eval", "--policy", str(tiny_run), "--out", str(tmp_path), "--recovery", "retry"])
    assert r.exit_code == 2 and "--recovery needs --monitor" in r.output
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    r = CliRunner().invoke(app, ["eval", "--policy", str(tiny_run), "--out", str(tmp_path), "--monitor", str(bad)])
    assert r.exit_code == 2 and "not a monitor calibration" in r.output
    with pytest.raises(MonitorError):
        MonitorCalibration.load(tmp_path / "absent.json")
