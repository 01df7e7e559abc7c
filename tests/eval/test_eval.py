"""Evaluation of a tiny trained policy writes a valid report (json + html + videos)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vla.eval.metrics import percentile_ms, wilson_interval
from vla.eval.runner import build_jobs, evaluate, load_instruction_overrides, resolve_policy_dir
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


class ExpertOrPolicy:
    """Stand-in for a policy that succeeds on some episodes: it runs the saved policy (its chunks are
    predicted and timed as usual) and, in episodes whose goal lies at negative x (the expert's first
    action points there), executes the scripted expert's action instead. Which episodes succeed thus
    depends on the evaluation seed only. Records every episode's (state, action) trajectory."""

    instances: list[ExpertOrPolicy] = []

    def __init__(self, inner: Policy) -> None:
        self.inner = inner
        self.trajectories: list[list[tuple[list[float], list[float]]]] = []
        self._expert: bool | None = None
        ExpertOrPolicy.instances.append(self)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def reset(self, seed: int | None = None) -> None:
        self.inner.reset()
        self.trajectories.append([])
        self._expert = None

    def select_action(self, obs):
        from vla.eval import rollout

        own = np.asarray(self.inner._selector.next(lambda: self.predict_chunk(obs)), np.float32)
        expert = rollout._STATE["env"].expert_action()
        if self._expert is None:
            self._expert = bool(expert[0] < 0)
        action = expert if self._expert else own
        self.trajectories[-1].append((np.round(obs["state"], 6).tolist(), np.round(action, 6).tolist()))
        return action


@pytest.fixture
def expert_or_policy(monkeypatch):
    original = Policy.from_pretrained.__func__
    monkeypatch.setattr(Policy, "from_pretrained", classmethod(lambda cls, d: ExpertOrPolicy(original(cls, d))))
    ExpertOrPolicy.instances.clear()
    return ExpertOrPolicy.instances


def _trajectories(instances: list[ExpertOrPolicy]) -> list:
    return [t for p in instances for t in p.trajectories]


def test_eval_writes_valid_report(tiny_policy, tmp_path, expert_or_policy):
    out = tmp_path / "eval"
    report = evaluate(tiny_policy, suite="mt1:reach-v3", episodes_per_task=2, out=out, workers=1, max_steps=60,
                      seed=5, progress=False)
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["success_rate"] == report["success_rate"]
    for key in ("suite", "split", "episodes_per_task", "success_rate", "tasks", "latency_ms", "policy", "seed"):
        assert key in on_disk, key
    assert on_disk["suite"] == "mt1:reach-v3" and on_disk["split"] == "train" and on_disk["seed"] == 5
    t = on_disk["tasks"]["reach-v3"]
    # seed 5: episode 0 runs the saved policy (fails), episode 1 the expert (succeeds)
    assert [e["success"] for e in on_disk["per_episode"]] == [False, True]
    assert t["episodes"] == 2 and t["successes"] == 1 and t["success_rate"] == 0.5 == on_disk["success_rate"]
    lo, hi = t["ci95"]
    assert 0.0 < lo < 0.5 < hi < 1.0
    success = on_disk["per_episode"][1]
    assert success["steps"] < 60 and t["mean_steps_to_success"] == success["steps"]
    assert on_disk["per_episode"][0]["steps"] == 60  # the failure ran to the step limit
    lat = on_disk["latency_ms"]
    assert lat["chunk_p50"] > 0 and lat["chunk_p99"] >= lat["chunk_p50"] and lat["step_p50"] >= 0
    assert on_disk["policy"]["params"] > 0 and on_disk["policy"]["head"] == "regression"
    assert on_disk["policy"]["chunk"] == 4
    assert on_disk["difficulty"] == {"easy": {"tasks": 1, "episodes": 2, "successes": 1, "success_rate": 0.5}}
    assert on_disk["difficulty_group_mean"] is None  # one group only
    html = (out / "report.html").read_text()
    assert "By MT50 difficulty group" in html
    assert "reach-v3" in html and "data:image/png;base64," in html
    assert set(t["videos"]) == {"success", "failure"}
    for v in t["videos"].values():
        assert (out / v).is_file() and v.split("/")[-1] in html


def test_eval_is_reproducible_for_a_seed(tiny_policy, tmp_path, expert_or_policy):
    def run(seed: int, name: str):
        expert_or_policy.clear()
        r = evaluate(tiny_policy, suite="mt1:reach-v3", episodes_per_task=2, out=tmp_path / name, workers=1,
                     max_steps=50, seed=seed, videos=False, progress=False)
        return r["per_episode"], _trajectories(expert_or_policy)

    a, traj_a = run(7, "a")
    b, traj_b = run(7, "b")
    c, traj_c = run(5, "c")
    # the episodes differ: one succeeds, one does not, and their trajectories are not alike
    assert sorted(e["success"] for e in a) == [False, True]
    assert len(traj_a) == 2 and traj_a[0] != traj_a[1] and all(len(t) > 10 for t in traj_a)
    # same seed: same outcomes and the same trajectories, step by step
    assert a == b and traj_a == traj_b
    # another seed: other goals, so other trajectories (the comparison can fail)
    assert traj_c != traj_a


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
