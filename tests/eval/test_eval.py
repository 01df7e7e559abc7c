"""Evaluation of a tiny trained policy writes a valid report (json + html + videos)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vla.eval import evaluate
from vla.eval.metrics import percentile_ms, wilson_interval
from vla.eval.runner import build_jobs, load_instruction_overrides, resolve_policy_dir
from vla.models import NormalizationStats, Policy, PolicyConfig
from vla.sim import make_suite


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    """A small policy trained for a few steps on random data, saved as a run folder."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    stats = NormalizationStats.from_arrays(rng.normal(size=(64, 4)).astype(np.float32),
                                           rng.uniform(-1, 1, size=(64, 4)).astype(np.float32))
    cfg = PolicyConfig(cameras=["corner4"], image_size=64, d_model=32, layers=1, heads=2, chunk=4, n_action_steps=2)
    policy = Policy(cfg, stats)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-3)
    batch = {"images": {"corner4": torch.randint(0, 255, (4, 64, 64, 3), dtype=torch.uint8)},
             "state": torch.randn(4, 4), "instruction": ["reach the goal"] * 4,
             "action": torch.rand(4, 4, 4) * 2 - 1, "action_mask": torch.ones(4, 4, dtype=torch.bool)}

    def eval_loss() -> float:
        policy.eval()
        with torch.no_grad():
            value = float(policy(batch)["loss"])
        policy.train()
        return value

    before = eval_loss()
    for _ in range(20):
        loss = policy(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert eval_loss() < before  # it learned something from the batch: a trained policy, not a random one
    run = tmp_path_factory.mktemp("run")
    policy.save(run / "policy")
    return run


def test_eval_writes_valid_report(tiny_policy, tmp_path):
    out = tmp_path / "eval"
    report = evaluate(tiny_policy, suite="mt1:reach-v3", episodes_per_task=2, out=out, workers=1, max_steps=12,
                      seed=3, progress=False)
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["success_rate"] == report["success_rate"]
    for key in ("suite", "split", "episodes_per_task", "success_rate", "tasks", "latency_ms", "policy", "seed"):
        assert key in on_disk, key
    assert on_disk["suite"] == "mt1:reach-v3" and on_disk["split"] == "train" and on_disk["seed"] == 3
    t = on_disk["tasks"]["reach-v3"]
    assert t["episodes"] == 2 and 0.0 <= t["success_rate"] <= 1.0
    lo, hi = t["ci95"]
    assert 0.0 <= lo <= t["success_rate"] <= hi <= 1.0
    lat = on_disk["latency_ms"]
    assert lat["chunk_p50"] > 0 and lat["chunk_p99"] >= lat["chunk_p50"] and lat["step_p50"] >= 0
    assert on_disk["policy"]["params"] > 0 and on_disk["policy"]["head"] == "regression"
    assert on_disk["policy"]["chunk"] == 4
    # 12 steps, executing 2 of every 4-action chunk -> 6 chunk predictions per episode
    assert all(e["steps"] <= 12 for e in on_disk["per_episode"])
    html = (out / "report.html").read_text()
    assert "reach-v3" in html and "data:image/png;base64," in html
    videos = list((out / "videos").glob("*.mp4"))
    assert videos, "a rollout video per task"
    for v in t["videos"].values():
        assert (out / v).is_file() and v.split("/")[-1] in html


def test_eval_is_reproducible_for_a_seed(tiny_policy, tmp_path):
    a = evaluate(tiny_policy, suite="mt1:reach-v3", episodes_per_task=1, out=tmp_path / "a", workers=1, max_steps=6,
                 seed=1, videos=False, progress=False)
    b = evaluate(tiny_policy, suite="mt1:reach-v3", episodes_per_task=1, out=tmp_path / "b", workers=1, max_steps=6,
                 seed=1, videos=False, progress=False)
    assert a["per_episode"] == b["per_episode"]


def test_split_and_instruction_overrides(tmp_path):
    suite = make_suite("mt1:drawer-open-v3")
    train = {j.instruction for j in build_jobs(suite, 6, "train", 0)}
    held = {j.instruction for j in build_jobs(suite, 6, "heldout", 0)}
    assert held and train and not (held & train)
    assert held == set(suite.instructions("drawer-open-v3", "heldout"))
    f = tmp_path / "instr.json"
    f.write_text(json.dumps({"drawer-open-v3": ["yank the drawer toward you"]}))
    over = load_instruction_overrides(f, suite.tasks)
    jobs = build_jobs(suite, 3, "train", 0, over)
    assert {j.instruction for j in jobs} == {"yank the drawer toward you"}
    f.write_text(json.dumps({"no-such-task": ["x"]}))
    with pytest.raises(ValueError, match="instr.json: task 'no-such-task' is not in the suite"):
        load_instruction_overrides(f, suite.tasks)
    f.write_text(json.dumps({"drawer-open-v3": []}))
    with pytest.raises(ValueError, match="non-empty list"):
        load_instruction_overrides(f, suite.tasks)


def test_eval_seeds_never_overlap_collection():
    from vla.sim.seeds import collection_seed, is_evaluation_seed

    suite = make_suite("mt10")
    jobs = build_jobs(suite, 10, "train", 0)
    assert all(is_evaluation_seed(j.seed) for j in jobs)
    assert not is_evaluation_seed(collection_seed(999_999, 49, 999_999))
    assert len({j.seed for j in jobs}) == len(jobs)


def test_resolve_policy_dir_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no policy here"):
        resolve_policy_dir(tmp_path)


def test_wilson_interval_and_percentiles():
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-3)
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    assert percentile_ms([0.001, 0.002, 0.003], 50) == pytest.approx(2.0)
    assert percentile_ms([], 50) is None
