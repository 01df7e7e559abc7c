"""Training on a weighted mixture of datasets and robots: argument parsing, the sampler's weights and
padding, and `vla train --dataset A --dataset B:0.5` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vla.cli import app
from vla.models import Policy
from vla.models.config import ConfigError
from vla.train.cache import build_cache
from vla.train.config import make_config
from vla.train.mixture import MixtureSampler, parse_dataset_arg, parse_mixture

from .test_train import TINY_POLICY
from .tiny_dataset import make_dataset


@pytest.fixture(scope="module")
def robots(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("robots")
    return {
        "arm4": make_dataset(root / "arm4", episodes=3, length=10, size=32, robot_type="arm4"),
        "arm7": make_dataset(root / "arm7", episodes=2, length=20, size=32, cameras=("corner4",), state_dim=9,
                             action_dim=7, robot_type="arm7", seed=1),
    }


def test_dataset_arguments_and_mixture_entries():
    assert parse_dataset_arg("data/a") .weight == 1.0
    assert parse_dataset_arg("data/a:0.5") == parse_dataset_arg("data/a:.5")
    assert parse_dataset_arg("data/a:0.5").dataset == "data/a"
    assert parse_dataset_arg("C:/x:y").dataset == "C:/x:y"  # a colon that is no weight stays in the path
    with pytest.raises(ConfigError, match="must be a number > 0"):
        parse_dataset_arg("data/a:0")
    with pytest.raises(ConfigError, match=r"mixture\[1\].weight"):
        parse_mixture([{"dataset": "a"}, {"dataset": "b", "weight": -1}])
    with pytest.raises(ConfigError, match="unknown key"):
        parse_mixture([{"dataset": "a", "wieght": 2}])
    cfg = make_config(["a", "b:0.25"], "out")
    assert cfg.dataset == "a" and cfg.mixture == [{"dataset": "a", "weight": 1.0}, {"dataset": "b", "weight": 0.25}]
    with pytest.raises(ConfigError, match="extra_datasets"):
        make_config(["a", "b"], "out", overrides=["extra_datasets=[c]"])


def _sampler(robots, tmp_path, weights, balance, batch=16):
    caches = [build_cache(robots["arm4"], ["corner4", "gripperPOV"], 32, tmp_path),
              build_cache(robots["arm7"], ["corner4"], 32, tmp_path)]
    return MixtureSampler(caches, ["arm4", "arm7"], weights, balance, batch, 4, ["corner4", "gripperPOV"], 32,
                          seed=0), caches


@pytest.mark.parametrize("balance", [False, True])
def test_the_sampler_hits_its_weights(robots, tmp_path, balance):
    sampler, caches = _sampler(robots, tmp_path, [1.0, 3.0], balance)
    draws = np.concatenate([sampler.draw(step)[0] for step in range(300)])  # 4,800 samples
    sizes = np.array([c.num_frames for c in caches], float)  # 30 and 40 frames
    w = np.array([1.0, 3.0]) * (sizes if balance else 1.0)
    p = w[1] / w.sum()
    sigma = np.sqrt(p * (1 - p) / len(draws))
    assert abs((draws == 1).mean() - p) < 4 * sigma
    assert np.array_equal(sampler.draw(7)[1], sampler.draw(7)[1])  # a step's batch depends on the step only


def test_mixed_batches_are_padded_and_name_their_robot(robots, tmp_path):
    sampler, caches = _sampler(robots, tmp_path, [1.0, 1.0], False, batch=32)
    b = sampler.batch(3)
    names = np.array(b["embodiment"])
    assert set(names) == {"arm4", "arm7"}
    assert b["state"].shape == (32, 9) and b["action"].shape == (32, 4, 7)
    arm4 = names == "arm4"
    assert (b["state"][arm4, 4:] == 0).all() and (b["action"][arm4][..., 4:] == 0).all()
    assert (b["images"]["gripperPOV"][~arm4] == 0).all()  # arm7 has no gripperPOV camera: blank
    assert b["images"]["gripperPOV"][arm4].float().mean() > 0
    which, frames = sampler.draw(3)
    assert np.allclose(b["state"][~arm4].numpy(), caches[1].state[frames[which == 1]])


def test_train_on_two_robots_from_the_cli(robots, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"policy": {k: v for k, v in TINY_POLICY.items()}, "batch_size": 4, "log_every": 1,
                               "progress": False, "warmup_steps": 1, "checkpoint_every": 3,
                               "cache_dir": str(tmp_path / "cache")}))
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--dataset", str(robots["arm4"]), "--dataset", f"{robots['arm7']}:0.5",
                                   "--out", str(run), "--config", str(cfg), "steps=3"])
    assert res.exit_code == 0, res.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["embodiments"] == ["arm4", "arm7"] and summary["num_frames"] == 70
    policy = Policy.from_pretrained(run)
    assert policy.config.cameras == ["corner4", "gripperPOV"]
    assert (policy.config.state_dim, policy.config.action_dim) == (9, 7)
    assert policy.registry["arm7"].cameras == ["corner4"] and policy.registry["arm7"].control_rate_hz == 10.0
    rng = np.random.default_rng(0)
    for name, (s, a, cams) in {"arm4": (4, 4, ["corner4", "gripperPOV"]), "arm7": (9, 7, ["corner4"])}.items():
        obs = {"images": {c: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for c in cams},
               "state": rng.normal(size=s).astype(np.float32), "instruction": "open the drawer"}
        assert policy.predict_chunk(obs, embodiment=name).shape == (TINY_POLICY["chunk"], a)
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in log if "loss" in r)


def test_a_new_robot_joins_a_trained_policy_zero_shot_and_by_fine_tuning(robots, tmp_path):
    base = tmp_path / "base"
    common = ["batch_size=4", "progress=false", "warmup_steps=1", f"cache_dir={tmp_path / 'cache'}"]
    policy_keys = [f"policy.{k}={json.dumps(v)}" for k, v in TINY_POLICY.items()]
    res = CliRunner().invoke(app, ["train", "--dataset", str(robots["arm4"]), "--dataset", str(robots["arm7"]),
                                   "--out", str(base), "steps=2", *common, *policy_keys])
    assert res.exit_code == 0, res.output
    new = make_dataset(tmp_path / "arm5", episodes=2, length=8, size=32, state_dim=6, action_dim=5, robot_type="arm5",
                       seed=3)
    zero = tmp_path / "zero"
    res = CliRunner().invoke(app, ["train", "--dataset", str(new), "--out", str(zero), "steps=0",
                                   f"init_policy={base / 'policy'}", *common])
    assert res.exit_code == 0, res.output
    before, after = Policy.from_pretrained(base), Policy.from_pretrained(zero)
    assert after.embodiment_names == ["arm4", "arm7", "arm5"]
    emb = after.state_dict()["embodiment_emb"]
    assert torch.equal(emb[:2], before.state_dict()["embodiment_emb"])
    assert torch.allclose(emb[2], before.state_dict()["embodiment_emb"].mean(0))
    for key, value in before.state_dict().items():  # zero steps: every shared weight unchanged
        if key != "embodiment_emb":
            assert torch.equal(after.state_dict()[key], value), key
    rng = np.random.default_rng(0)
    obs = {"images": {c: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for c in ("corner4", "gripperPOV")},
           "state": rng.normal(size=6).astype(np.float32), "instruction": "open the drawer"}
    assert after.predict_chunk(obs, embodiment="arm5").shape == (TINY_POLICY["chunk"], 5)
    tuned = tmp_path / "tuned"
    res = CliRunner().invoke(app, ["train", "--dataset", str(new), "--out", str(tuned), "steps=2",
                                   f"init_policy={zero / 'policy'}", *common])
    assert res.exit_code == 0, res.output
    assert Policy.from_pretrained(tuned).embodiment_names == ["arm4", "arm7", "arm5"]
    big = make_dataset(tmp_path / "arm9", episodes=1, length=6, size=32, state_dim=12, action_dim=9,
                       robot_type="arm9")
    res = CliRunner().invoke(app, ["train", "--dataset", str(big), "--out", str(tmp_path / "big"), "steps=0",
                                   f"init_policy={base / 'policy'}", *common])
    assert res.exit_code == 2 and "more state/action dims" in res.output
    wide = tmp_path / "wide"  # padded to fixed larger sizes, the base policy has room for arm9
    res = CliRunner().invoke(app, ["train", "--dataset", str(robots["arm4"]), "--dataset", str(robots["arm7"]),
                                   "--out", str(wide), "steps=1", "policy.state_dim=16", "policy.action_dim=10",
                                   *common, *policy_keys])
    assert res.exit_code == 0, res.output
    assert (Policy.from_pretrained(wide).config.state_dim, Policy.from_pretrained(wide).config.action_dim) == (16, 10)
    res = CliRunner().invoke(app, ["train", "--dataset", str(big), "--out", str(tmp_path / "big2"), "steps=0",
                                   f"init_policy={wide / 'policy'}", *common])
    assert res.exit_code == 0, res.output
    assert Policy.from_pretrained(tmp_path / "big2").registry["arm9"].action_dim == 9
