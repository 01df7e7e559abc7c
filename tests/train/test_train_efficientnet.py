"""`vla train` with policy.vision_encoder=efficientnet_lite0, frozen and fine-tuned: the run trains, its
policy folder loads and predicts, a frozen trunk is left out of the weights, and a fine-tuned trunk is
optimized at pretrained_lr_scale times the learning rate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from vla.models import Policy
from vla.train.config import make_config

from .test_train import TINY_POLICY
from .tiny_dataset import make_dataset

EFFNET = ["policy.vision_encoder=efficientnet_lite0", "policy.image_size=32", "policy.vision_grid=2"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds") / "tiny", episodes=3, length=10, size=32)


@pytest.mark.parametrize("frozen", [True, False])
def test_vla_train_with_efficientnet_lite0(frozen, dataset, tmp_path):
    from vla.cli import app

    config = tmp_path / "train.json"
    config.write_text(json.dumps({"policy": TINY_POLICY, "batch_size": 4, "log_every": 1, "progress": False,
                                  "warmup_steps": 1, "cache_dir": str(tmp_path / "cache")}))
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--dataset", str(dataset), "--out", str(run), "--config", str(config),
                                      "steps=3", "lr=1e-3", "pretrained_lr_scale=0.25", *EFFNET,
                                      f"policy.vision_frozen={str(frozen).lower()}"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in records)

    keys = load_file(str(run / "policy" / "model.safetensors")).keys()
    assert any(".backbone." in k for k in keys) == (not frozen)
    groups = json.loads(next((run / "checkpoints").iterdir()).joinpath("trainer_state.json").read_text())[
        "param_groups"]
    lrs = sorted({(g["lr_scale"], g["lr"]) for g in groups})
    last_lr = records[-1]["lr"]
    assert lrs == ([(1.0, last_lr)] if frozen else [(0.25, last_lr * 0.25), (1.0, last_lr)])

    policy = Policy.from_pretrained(run)
    assert policy.config.vision_encoder == "efficientnet_lite0" and policy.config.vision_frozen == frozen
    rng = np.random.default_rng(0)
    o = {"images": {c: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for c in policy.config.cameras},
         "state": np.zeros(4, np.float32), "instruction": "open the drawer"}
    chunk = policy.predict_chunk(o)
    assert chunk.shape == (TINY_POLICY["chunk"], 4) and np.isfinite(chunk).all()


def test_pretrained_lr_scale_must_be_in_0_1():
    with pytest.raises(ValueError, match="pretrained_lr_scale: expected 0 < scale <= 1, got 0.0"):
        make_config("ds", "run", None, ["pretrained_lr_scale=0"])
