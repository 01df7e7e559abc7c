"""vla adapt end to end with tiny settings: provenance, audit, catalog, adapt.json, takeovers, bad arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vla.adapt import AdaptError, AdaptSettings, adapt
from vla.data import Dataset
from vla.serve.monitor import MonitorCalibration
from vla.serve.monitor_signals import SIGNALS

TINY_POLICY = {"cameras": ["corner4"], "image_size": 32, "vision_widths": [8, 16], "vision_blocks": [0, 1],
               "vision_grid": 2, "keypoint_stage": 0, "vision_keypoints": 4, "keypoint_tokens": 1, "d_model": 32,
               "heads": 2, "layers": 1, "chunk": 4, "n_action_steps": 2}
EXPERT = "metaworld.policies.SawyerReachV3Policy"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A MetaWorld reach dataset of 3 scripted demos (32 px, one camera) and a policy trained 2 steps on it."""
    from vla.adapt.store import write_episodes
    from vla.sim import MetaWorldEnv
    from vla.sim.collect import provenance
    from vla.sim.rollout import run_expert_episode
    from vla.sim.seeds import collection_seed
    from vla.sim.suites import mt50_tasks
    from vla.train.config import TrainConfig
    from vla.train.loop import train

    root = tmp_path_factory.mktemp("adapt")
    demos = []  # as `vla collect metaworld` writes them, without its worker processes
    with MetaWorldEnv("reach-v3", cameras=("corner4",), image_size=32, max_steps=150) as env:
        for k in range(3):
            ep = run_expert_episode(env, collection_seed(0, mt50_tasks().index("reach-v3"), k), k)
            assert ep.success
            demos.append(({"states": ep.states, "actions": ep.actions, "images": ep.images,
                           "instruction": ep.instruction}, provenance(ep, ("corner4",), 32, 10).validate()))
    write_episodes(root / "demos", demos, ("corner4",), 32)
    return train(TrainConfig(dataset=str(root / "demos"), out=str(root / "weak"), policy=dict(TINY_POLICY), steps=2,
                             batch_size=4, warmup_steps=0, progress=False, cache_dir=str(root / "cache")))


def _settings(run: Path, out: Path, **kw) -> AdaptSettings:
    base = dict(policy=str(run), suite="mt1:reach-v3", rounds=1, episodes_per_round=2, out=str(out),
                steps_per_round=2, eval_episodes=1, workers=1, max_steps=20, expert_steps=150, progress=False,
                batch_size=4)
    return AdaptSettings(**{**base, **kw})


def _always_alarm(path: Path) -> Path:
    """A calibration whose threshold every score exceeds: the alarm fires at the first step."""
    zero, one = dict.fromkeys(SIGNALS, 0.0), dict.fromkeys(SIGNALS, 1.0)
    MonitorCalibration(zero, one, one, threshold=-1.0, alpha=0.1).save(path)
    return path


def _provenance(ds: Dataset) -> list[dict]:
    return [e.provenance for e in ds.episodes]


def test_dagger_round_records_interventions_with_provenance(run, tmp_path):
    out = tmp_path / "a"
    result = adapt(_settings(run, out, mode="dagger", monitor=str(_always_alarm(tmp_path / "cal.json"))))

    saved = json.loads((out / "adapt.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert {"rounds", "baseline", "settings", "initial", "summary"} <= set(saved)
    (r,) = saved["rounds"]
    assert {"round", "success_rate", "tasks", "interventions", "episodes_added", "minutes"} <= set(r)
    assert r["round"] == 1 and r["rollouts"] == 2 and r["interventions"] == 2 and r["alarms"] == 2
    assert r["episodes_added"] == r["interventions_kept"] == 2 and r["policy_rollouts_kept"] == 0
    assert set(r["tasks"]) == {"reach-v3"} and 0 <= r["success_rate"] <= 1 and r["minutes"] > 0

    ds = Dataset.open(out / "dataset")
    assert ds.num_episodes == 2 and r["dataset_episodes"] == 2
    for prov in _provenance(ds):
        assert prov["collection_method"] == "intervention" and prov["collector_id"] == EXPERT
        # the alarm fired on the policy's first step: the expert acts from step 1 on
        assert prov["extra"]["round"] == 1 and prov["extra"]["takeover_step"] == 1
        assert prov["extra"]["policy_id"] == "weak/round-01" and prov["source"]["path"] == "metaworld/reach-v3"
    assert r["audit"]["passed"] and r["audit"]["errors"] == 0 and r["audit"]["catalog"] == "added"

    from vla.data.catalog import Catalog, Query

    with Catalog(out / "catalog.sqlite", readonly=True) as cat:
        hits = cat.search(Query(collection_method="intervention"))
        both = cat.search(Query(dataset=str((out / "baseline" / "dataset").absolute())))
    assert len(hits) == 2 and {h["collector_id"] for h in hits} == {EXPERT}
    assert all(h["quality"] is not None and h["dataset_path"] == str((out / "dataset").absolute()) for h in hits)
    assert len(both) == 2  # the baseline's demonstrations are catalogued too
    assert json.loads((out / "rounds" / "r01" / "audit.json").read_text())["episodes"]

    # the baseline: as many scripted demos, on the same round's scenes, fine-tuned and evaluated the same way
    (b,) = saved["baseline"]["rounds"]
    assert b["episodes_added"] == 2 and b["round"] == 1
    base = Dataset.open(out / "baseline" / "dataset")
    assert [p["collection_method"] for p in _provenance(base)] == ["scripted", "scripted"]
    assert all(p["extra"]["round"] == 1 and p["extra"]["seed_range"] == "adaptation" for p in _provenance(base))
    assert "beats_baseline" in saved["summary"]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "reach-v3" in html and (out / "learning_curve.png").stat().st_size
    assert not (out / ".work").exists()
    # the fine-tuned policy of round 1 is what was evaluated and started from the given one
    assert Path(r["policy"]).parent.parent.name == "r01"


def test_filtered_round_keeps_successful_rollouts(run, tmp_path, monkeypatch):
    """Without a calibration: the policy (here replaced by the expert, so it succeeds) runs to the end and its
    successes are kept as policy rollouts; two successes are too few to calibrate, which the round says."""
    from vla.adapt import episodes

    original = episodes.init_worker

    def expert_acting(config):
        original(config)
        policy = episodes._STATE["policy"]

        def act(obs, **_):
            policy.predict_chunk(obs)  # chunks still reach the monitor through the wrapped predict_chunk
            return episodes._STATE["env"].expert_action()

        policy.select_action = act

    monkeypatch.setattr(episodes, "init_worker", expert_acting)
    out = tmp_path / "f"
    saved = adapt(_settings(run, out, mode="both", max_steps=90, baseline="none"))
    (r,) = saved["rounds"]
    assert r["policy_rollouts_kept"] == 2 and r["interventions"] == 0 and r["rollout_success_rate"] == 1.0
    assert "not yet calibrated" in r["monitor"]["status"] and saved["baseline"] is None
    ds = Dataset.open(out / "dataset")
    for e, prov in zip(ds.episodes, _provenance(ds), strict=True):
        assert prov["collection_method"] == "policy_rollout" and prov["collector_id"] == "weak/round-01"
        assert prov["extra"]["round"] == 1 and prov["extra"]["start_step"] == 0
        # kept episodes end steps_after_success (10) frames after the first success, like scripted demos
        assert e.length == prov["extra"]["success_step"] + 11
    assert r["audit"]["passed"]


def test_first_round_calibrates_and_replays_to_the_alarm(run, tmp_path, monkeypatch):
    """No calibration given: the round calibrates on its successes, then the deferred takeovers replay the
    policy's actions to the alarm step from the seed and reach the same state (the scene is deterministic)."""
    from vla.serve import monitor

    real = monitor.calibrate

    def forced(episodes, alpha=0.1, **kw):
        cal = real(episodes, alpha=alpha, **kw)
        return MonitorCalibration(cal.center, cal.spread, cal.weights, -1.0, alpha)  # every step alarms

    monkeypatch.setattr(monitor, "calibrate", forced)
    from vla.adapt import episodes

    original = episodes.init_worker

    def mixed(config):
        original(config)
        policy = episodes._STATE["policy"]
        own = policy.select_action

        def act(obs, **kw):
            a = own(obs, **kw)  # the policy's own actions for 3 steps, then the expert's (it succeeds)
            return a if episodes._STATE["env"].steps < 3 else episodes._STATE["env"].expert_action()

        policy.select_action = act

    monkeypatch.setattr(episodes, "init_worker", mixed)
    out = tmp_path / "c"
    saved = adapt(_settings(run, out, mode="dagger", episodes_per_round=4, max_steps=90, baseline="none"))
    (r,) = saved["rounds"]
    assert "calibrated on 4 successful rollouts" in r["monitor"]["status"] and (out / "monitor.json").is_file()
    assert r["interventions"] == 4 and r["replay_mismatches"] == 0 and r["episodes_added"] == 4
    ds = Dataset.open(out / "dataset")
    assert all(p["extra"]["takeover_step"] == 1 for p in _provenance(ds))


@pytest.mark.parametrize("change, flag", [
    ({"mode": "online"}, "--mode"), ({"teacher": "human"}, "--teacher"), ({"suite": "mt3"}, "--suite"),
    ({"rounds": 0}, "--rounds"), ({"episodes_per_round": 0}, "--episodes-per-round"),
    ({"baseline": "sometimes"}, "--baseline"), ({"alpha": 1.5}, "--alpha"),
    ({"policy": "/nonexistent/run"}, "--policy"), ({"monitor": "/nonexistent/cal.json"}, "--monitor"),
    ({"dataset": "/nonexistent/ds"}, "--dataset"), ({"steps_per_round": 0}, "--steps-per-round"),
])
def test_bad_arguments_fail_before_writing(run, tmp_path, change, flag):
    out = tmp_path / "bad"
    with pytest.raises(AdaptError, match=flag.replace("-", r"\-")):
        adapt(_settings(run, out, **change))
    assert not out.exists()


def test_out_must_be_new_and_cli_reports_one_error_line(run, tmp_path):
    from typer.testing import CliRunner

    from vla.cli import app

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("keep me")
    with pytest.raises(AdaptError, match="--out"):
        adapt(_settings(run, busy))
    assert sorted(p.name for p in busy.iterdir()) == ["x"]
    res = CliRunner().invoke(app, ["adapt", "--policy", str(run), "--suite", "mt1:reach-v3", "--rounds", "1",
                                   "--episodes-per-round", "2", "--out", str(tmp_path / "cli"), "--mode", "nope"])
    assert res.exit_code == 2 and "error: --mode" in res.output and not (tmp_path / "cli").exists()


def test_cli_help_lists_the_flags():
    from typer.testing import CliRunner

    from vla.cli import app

    res = CliRunner().invoke(app, ["adapt", "--help"])
    assert res.exit_code == 0
    for flag in ("--policy", "--suite", "--rounds", "--episodes-per-round", "--out", "--teacher", "--mode",
                 "--steps-per-round", "--baseline", "--monitor"):
        assert flag in res.output


def test_resume_continues_after_the_last_finished_round(run, tmp_path):
    out = tmp_path / "r"
    monitor = str(_always_alarm(tmp_path / "cal.json"))
    first = adapt(_settings(run, out, mode="dagger", monitor=monitor))
    assert len(first["rounds"]) == 1 and Dataset.open(out / "dataset").num_episodes == 2
    (out / "rounds" / "r02" / "train").mkdir(parents=True)  # what an interrupted round 2 left
    with pytest.raises(AdaptError, match="--resume: settings differ.*steps_per_round"):
        adapt(_settings(run, out, mode="dagger", monitor=monitor, steps_per_round=3, rounds=2, resume=True))
    second = adapt(_settings(run, out, mode="dagger", monitor=monitor, rounds=2, resume=True))
    assert [r["round"] for r in second["rounds"]] == [1, 2]
    assert second["rounds"][0] == first["rounds"][0] and second["initial"] == first["initial"]
    assert second["rounds"][1]["dataset_episodes"] == 4 and Dataset.open(out / "dataset").num_episodes == 4
    assert [b["round"] for b in second["baseline"]["rounds"]] == [1, 2]
    assert Dataset.open(out / "baseline" / "dataset").num_episodes == 4
    assert not (out / "rounds" / "r02" / "new").exists()  # merged, then removed
    assert Path(second["rounds"][1]["policy"]).parent.parent.name == "r02"
    from vla.data.catalog import Catalog, Query

    with Catalog(out / "catalog.sqlite", readonly=True) as cat:
        assert len(cat.search(Query(collection_method="intervention"))) == 4
    with pytest.raises(AdaptError, match="--rounds.*2 finished"):
        adapt(_settings(run, out, mode="dagger", monitor=monitor, rounds=1, resume=True))
    with pytest.raises(AdaptError, match="nothing to resume"):
        adapt(_settings(run, tmp_path / "none", resume=True))


def test_fine_tunes_keep_the_original_runs_episode_selection(run, tmp_path):
    """A policy trained on some episodes of its dataset is fine-tuned on those only, plus the new ones."""
    from vla.train.config import TrainConfig
    from vla.train.loop import train

    dataset = json.loads((run / "train_config.json").read_text())["dataset"]
    few = train(TrainConfig(dataset=dataset, out=str(tmp_path / "few"), policy=dict(TINY_POLICY), steps=2,
                            batch_size=4, warmup_steps=0, progress=False, cache_dir=str(tmp_path / "cache"),
                            episodes=[0, 2]))
    out = tmp_path / "a"
    saved = adapt(_settings(few, out, mode="dagger", baseline="none",
                            monitor=str(_always_alarm(tmp_path / "cal.json"))))
    (r,) = saved["rounds"]
    tuned = json.loads((Path(r["policy"]).parent / "train_config.json").read_text())
    assert tuned["dataset"] == dataset and tuned["episodes"] == [0, 2]
    # frames: episodes 0 and 2 of the original dataset plus the round's 2 interventions, not episode 1
    lengths = [e.length for e in Dataset.open(dataset).episodes]
    added = sum(e.length for e in Dataset.open(out / "dataset").episodes)
    assert json.loads((Path(r["policy"]).parent / "summary.json").read_text())["num_frames"] == \
        lengths[0] + lengths[2] + added
