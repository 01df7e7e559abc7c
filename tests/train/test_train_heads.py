"""Every action head through `vla train` -> Policy.from_pretrained -> predict_chunk -> the serving loader;
a bad head or head option stops `vla train` with one error line before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vla.models import Policy

from .test_train import TINY_POLICY
from .tiny_dataset import make_dataset

SMALL = "{width: 16, heads: 2}"
VARIANTS = {  # name: (overrides, loss keys logged besides "loss")
    "regression": ([], {"l1", "mse"}),
    "bins-parallel": (["policy.head=bins"], {"accuracy", "l1"}),
    "bins-autoregressive": (["policy.head=bins", f"policy.head_options={SMALL}",
                             "policy.head_options.decode=autoregressive"], {"accuracy", "l1"}),
    "diffusion-mlp": (["policy.head=diffusion", "policy.head_options.hidden=32"], set()),
    "diffusion-transformer": (["policy.head=diffusion", f"policy.head_options={SMALL}",
                               "policy.head_options.denoiser=transformer"], set()),
    "flow": (["policy.head=flow", f"policy.head_options={SMALL}", "policy.head_options.steps=4"], set()),
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds") / "tiny", episodes=3, length=10, size=32)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cfg")
    path = folder / "train.json"
    path.write_text(json.dumps({"policy": TINY_POLICY, "batch_size": 4, "log_every": 1, "progress": False,
                                "warmup_steps": 1, "cache_dir": str(folder / "cache")}))
    return path


def _obs(policy: Policy, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    c = policy.config
    return {"images": {cam: rng.integers(0, 256, (c.image_size, c.image_size, 3), dtype=np.uint8)
                       for cam in c.cameras},
            "state": rng.normal(size=c.state_dim).astype(np.float32), "instruction": "open the drawer"}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_vla_train_then_load_predict_and_serve(name, dataset, config_file, tmp_path):
    from vla.cli import app
    from vla.serve.policy_service import load_policy_service

    overrides, extra_keys = VARIANTS[name]
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--dataset", str(dataset), "--out", str(run), "--config",
                                      str(config_file), "steps=3", *overrides])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:  # every loss the head returns is logged, by its name
        assert {"loss", *extra_keys} <= set(r) and np.isfinite(r["loss"]), r
        assert not ({"l1", "mse", "accuracy"} - extra_keys) & set(r), r
    assert (run / "loss.png").is_file()

    policy = Policy.from_pretrained(run)
    head = overrides[0].split("=")[1] if overrides else "regression"
    assert policy.config.head == head
    chunk = policy.predict_chunk(_obs(policy), seed=5)
    assert chunk.shape == (TINY_POLICY["chunk"], 4) and chunk.dtype == np.float32 and np.isfinite(chunk).all()
    np.testing.assert_array_equal(chunk, policy.predict_chunk(_obs(policy), seed=5))
    assert policy.select_action(_obs(policy)).shape == (4,)

    predict, spec, metadata = load_policy_service(run)
    assert metadata["policy"]["head"] == head
    served = predict(_obs(policy))
    assert served.shape == chunk.shape and np.isfinite(served).all()


def _vla(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from vla.cli import main; main()", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("overrides, expected", [
    (["policy.head=nope"], "unknown action head 'nope'; known heads: ['bins', 'diffusion', 'flow', 'regression']"),
    (["policy.head=flow", "policy.head_options.stepz=3"], "unknown key(s) ['stepz'] for head 'flow'; known options:"),
    (["policy.head=bins", "policy.head_options={decode: beam}"],
     "head_options.decode (head 'bins'): expected one of ['parallel', 'autoregressive'], got 'beam'"),
])
def test_bad_head_or_option_fails_before_training_with_one_line(overrides, expected, dataset, tmp_path):
    run, cache = tmp_path / "run", tmp_path / "cache"
    r = _vla("train", "--dataset", str(dataset), "--out", str(run), f"cache_dir={cache}", *overrides)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: policy.") and expected in lines[0], lines
    assert not run.exists() and not cache.exists()  # nothing written, no cache built
