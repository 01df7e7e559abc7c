"""Training: cache, sampling, CLI, resume bit-exactness, 2-process torchrun, eval hook."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from vla.data.errors import DatasetError
from vla.models import Policy
from vla.models.config import ConfigError
from vla.train.cache import build_cache
from vla.train.config import TrainConfig, apply_overrides, make_config
from vla.train.loop import train
from vla.train.optim import lr_at
from vla.train.sampler import BatchSampler

from .tiny_dataset import INSTRUCTIONS, make_dataset

TINY_POLICY = {"image_size": 32, "vision_widths": [8, 16], "vision_blocks": [0, 1], "vision_grid": 2,
               "keypoint_stage": 0, "vision_keypoints": 4, "keypoint_tokens": 1, "d_model": 32, "heads": 2,
               "layers": 1, "chunk": 4, "n_action_steps": 2, "augment_shift": 2}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds") / "tiny", episodes=3, length=10, size=40)


def _config(dataset: Path, out: Path, **changes) -> TrainConfig:
    base = dict(dataset=str(dataset), out=str(out), policy=dict(TINY_POLICY), steps=6, batch_size=4,
                log_every=2, checkpoint_every=3, warmup_steps=2, progress=False, cache_dir=str(out.parent / "cache"))
    return TrainConfig(**{**base, **changes})


def test_cache_is_built_once_and_keyed_by_settings(dataset, tmp_path):
    c1 = build_cache(dataset, ["corner4", "gripperPOV"], 32, tmp_path)
    assert c1.images["corner4"].shape == (30, 32, 32, 3) and isinstance(c1.images["corner4"], np.memmap)
    assert c1.state.shape == (30, 4) and c1.action.shape == (30, 4)
    assert sorted(c1.instructions) == sorted(INSTRUCTIONS)
    stamp = (c1.root / "images_corner4.npy").stat().st_mtime_ns
    c2 = build_cache(dataset, ["corner4", "gripperPOV"], 32, tmp_path)
    assert c2.root == c1.root and (c2.root / "images_corner4.npy").stat().st_mtime_ns == stamp
    c3 = build_cache(dataset, ["corner4"], 24, tmp_path)
    assert c3.root != c1.root and c3.images["corner4"].shape[1:] == (24, 24, 3)
    with pytest.raises(DatasetError, match="no camera.*'topview'"):
        build_cache(dataset, ["topview"], 32, tmp_path)


def test_sampler_masks_actions_past_episode_end(dataset, tmp_path):
    cache = build_cache(dataset, ["corner4"], 32, tmp_path)
    s = BatchSampler(cache, batch_size=64, chunk=4, cameras=["corner4"], seed=0)
    b = s.batch(0)
    idx = s.indices(0)
    remaining = cache.episode_end[idx] - idx
    np.testing.assert_array_equal(b["action_mask"].numpy(), np.arange(4)[None] < remaining[:, None])
    np.testing.assert_array_equal(b["action"][:, 0].numpy(), cache.action[idx])
    assert b["images"]["corner4"].dtype == torch.uint8 and len(b["instruction"]) == 64
    np.testing.assert_array_equal(s.indices(5), BatchSampler(cache, 64, 4, ["corner4"], 0).indices(5))


def test_lr_schedule():
    assert lr_at(0, 1.0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_at(9, 1.0, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_at(100, 1.0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_at(55, 1.0, 10, 100, 0.1) == pytest.approx(0.55)


def test_config_overrides_and_errors(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("steps: 10\npolicy:\n  d_model: 64\n")
    cfg = make_config("ds", "run", f, ["lr=1e-3", "policy.layers=3", "heads=8", "temporal_ensemble=null"])
    assert (cfg.steps, cfg.lr, cfg.policy) == (10, 1e-3, {"d_model": 64, "layers": 3, "heads": 8,
                                                          "temporal_ensemble": None})
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        apply_overrides({}, ["colour=red"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["steps"])
    with pytest.raises(ConfigError, match="policy: unknown key"):
        TrainConfig(policy={"bogus": 1})


def test_concat_cache_reads_frames_across_datasets(dataset, tmp_path):
    from vla.train.cache import concat_caches

    other = make_dataset(tmp_path / "other", episodes=2, length=7, size=40, seed=3)
    a = build_cache(dataset, ["corner4"], 32, tmp_path / "cache")
    b = build_cache(other, ["corner4"], 32, tmp_path / "cache")
    c = concat_caches([a, b])
    assert c.num_frames == 30 + 14 and c.images["corner4"].shape == (44, 32, 32, 3)
    idx = np.array([0, 29, 30, 43])
    np.testing.assert_array_equal(c.images["corner4"][idx][2:], b.images["corner4"][[0, 13]])
    np.testing.assert_array_equal(c.images["corner4"][idx][:2], a.images["corner4"][[0, 29]])
    assert c.episode_end[30] == 37 and c.episode_end[29] == 30  # second dataset's episodes end after the first's
    assert [c.instructions[i] for i in c.instruction_id[30:]] == [b.instructions[i] for i in b.instruction_id]
    batch = BatchSampler(c, 16, 4, ["corner4"], 0).batch(0)  # chunks never cross into the next dataset
    assert batch["action_mask"].shape == (16, 4)


def test_fine_tune_from_a_policy_on_two_datasets(dataset, tmp_path):
    base = train(_config(dataset, tmp_path / "base"))
    other = make_dataset(tmp_path / "other", episodes=2, length=7, size=40, seed=3)
    cfg = _config(dataset, tmp_path / "ft", policy={}, init_policy=str(base / "policy"), extra_datasets=[str(other)],
                  steps=2, lr=1e-12, warmup_steps=0)
    run = train(cfg)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["num_frames"] == 30 + 14
    init, tuned = Policy.from_pretrained(base), Policy.from_pretrained(run)
    assert tuned.config == init.config and tuned.stats.to_dict() == init.stats.to_dict()
    a, b = init.state_dict(), tuned.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)  # started from init's weights (lr ~ 0)
    fresh = Policy.from_pretrained(train(_config(dataset, tmp_path / "fresh", steps=2, lr=1e-12, warmup_steps=0,
                                                 seed=1)))
    assert not all(torch.allclose(a[k], fresh.state_dict()[k], atol=1e-6) for k in a)
    with pytest.raises(ConfigError, match="init_policy"):
        _config(dataset, tmp_path / "x", init_policy=str(base / "policy"))  # policy settings beside init_policy
    with pytest.raises(ConfigError, match="extra_datasets"):
        _config(dataset, tmp_path / "x", extra_datasets="not-a-list")


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step_{step:06d}" / "train_state.safetensors"))


def test_train_writes_run_and_resume_is_bit_exact(dataset, tmp_path):
    evals = []
    straight = train(_config(dataset, tmp_path / "a"), eval_fn=lambda p, s: evals.append(s) or {"success_rate": 0.5})
    for name in ("metrics.jsonl", "loss.png", "summary.json", "train_config.json", "policy/model.safetensors"):
        assert (straight / name).is_file(), name
    records = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 6]
    assert all(r["samples_per_s"] > 0 and 0 <= r["data_wait_frac"] <= 1 for r in records if "loss" in r)
    assert evals == [6] and records[-1] == {"step": 6, "eval/success_rate": 0.5}
    policy = Policy.from_pretrained(straight)  # a run folder loads its final policy
    assert policy.config.state_dim == 4 and policy.config.chunk == 4

    # N/2 steps, stop, resume for the rest: identical raw weights, EMA and optimizer state
    cfg_b = _config(dataset, tmp_path / "b")
    train(cfg_b, stop_at=3)
    assert not (tmp_path / "b" / "policy").exists()
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg_b)
    with pytest.raises(ValueError, match="policy settings differ.*d_model"):
        train(_config(dataset, tmp_path / "b", policy={**TINY_POLICY, "d_model": 16}), resume=True)
    train(cfg_b, resume=True)
    a, b = _weights(straight, 6), _weights(tmp_path / "b", 6)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    pa = load_file(str(straight / "policy" / "model.safetensors"))
    pb = load_file(str(tmp_path / "b" / "policy" / "model.safetensors"))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    steps_b = [json.loads(x)["step"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps_b == [2, 4, 6]


def test_cli_train_command(dataset, tmp_path):
    import typer

    from vla.train.commands import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer in multi-command mode, as in `vla`
        pass

    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps({"policy": TINY_POLICY, "batch_size": 4, "log_every": 1, "progress": False,
                               "cache_dir": str(tmp_path / "cache")}))
    result = CliRunner().invoke(app, ["train", "--dataset", str(dataset), "--out", str(tmp_path / "run"),
                                      "--config", str(cfg), "steps=2", "checkpoint_every=1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{"):])["steps"] == 2
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_000001", "step_000002"]
    bad = CliRunner().invoke(app, ["train", "--dataset", str(dataset), "--out", str(tmp_path / "r2"), "colour=red"])
    assert bad.exit_code != 0 and "colour" in bad.output


def test_torchrun_two_processes_stay_in_sync(dataset, tmp_path):
    out = tmp_path / "ddp"
    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps({"policy": TINY_POLICY, "batch_size": 4, "log_every": 1, "progress": False,
                               "checkpoint_every": 100, "cache_dir": str(tmp_path / "cache")}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vla.train", "--dataset", str(dataset), "--out", str(out), "--config", str(cfg), "steps=3"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
        proc.communicate()
        raise
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert stdout.count('"ranks_in_sync"') == 1  # rank 0 alone prints the summary
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and len(summary["weights_sha256_per_rank"]) == 2
    assert summary["ranks_in_sync"], summary["weights_sha256_per_rank"]
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]  # rank 0 alone logs
    assert (out / "policy" / "model.safetensors").is_file()
