"""The auxiliary environment-state loss: cached, logged, learned, saved, and refused without data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vla.models import Policy
from vla.models.config import ConfigError, PolicyConfig
from vla.train.cache import build_cache
from vla.train.config import TrainConfig
from vla.train.loop import train
from vla.train.sampler import BatchSampler

from ..models.helpers import stats, tiny_config
from .test_train import TINY_POLICY
from .tiny_dataset import make_dataset


@pytest.fixture(scope="module")
def env_dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds") / "env", episodes=4, length=10, size=32, env_state=True)


def _config(dataset: Path, out: Path, weight: float, steps: int = 6) -> TrainConfig:
    return TrainConfig(dataset=str(dataset), out=str(out), steps=steps, batch_size=8, log_every=1,
                       checkpoint_every=steps, warmup_steps=1, progress=False, cache_dir=str(out.parent / "cache"),
                       policy={**TINY_POLICY, "aux_env_state_weight": weight})


def test_cache_and_sampler_carry_the_environment_state(env_dataset, tmp_path):
    cache = build_cache(env_dataset, ["corner4"], 32, tmp_path)
    assert cache.env_state is not None and cache.env_state.shape == (40, 3)
    batch = BatchSampler(cache, 5, 4, ["corner4"], seed=0).batch(0)
    idx = BatchSampler(cache, 5, 4, ["corner4"], seed=0).indices(0)
    np.testing.assert_array_equal(batch["environment_state"].numpy(), cache.env_state[idx])


def test_aux_loss_reaches_the_image_encoder_and_can_be_fit(env_dataset, tmp_path):
    cache = build_cache(env_dataset, ["corner4", "gripperPOV"], 32, tmp_path)
    torch.manual_seed(0)
    policy = Policy(tiny_config(aux_env_state_weight=1.0, env_state_dim=3), stats())
    policy.env_state_head.set_stats(cache.env_state)
    batch = BatchSampler(cache, 16, policy.config.chunk, list(policy.config.cameras), seed=0).batch(0)
    first = policy(batch)
    first["env_state"].backward()
    vision_grad = sum(float(p.grad.abs().sum()) for p in policy.vision.parameters() if p.grad is not None)
    assert vision_grad > 0  # the target shapes the image features, not only its own small head
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(40):
        opt.zero_grad()
        policy(batch)["env_state"].backward()
        opt.step()
    assert float(policy(batch)["env_state"]) < 0.5 * float(first["env_state"])
    total = policy(batch)
    torch.testing.assert_close(total["loss"], total["l1"] + total["env_state"])  # weight 1.0


def test_training_logs_and_saves_the_aux_loss(env_dataset, tmp_path):
    run = train(_config(env_dataset, tmp_path / "run", weight=1.0, steps=4))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len([r["env_state"] for r in records if "env_state" in r]) == 4
    policy = Policy.from_pretrained(run / "policy")
    assert policy.config.env_state_dim == 3 and policy.env_state_head is not None
    cache = build_cache(env_dataset, ["corner4", "gripperPOV"], 32, tmp_path / "run" / "cache")
    torch.testing.assert_close(policy.env_state_head.mean, torch.from_numpy(cache.env_state.mean(0)).float())
    # the policy never reads the environment state: inference takes only images, state, instruction
    obs = {"images": {c: np.zeros((32, 32, 3), np.uint8) for c in policy.config.cameras},
           "state": np.zeros(4, np.float32), "instruction": "open the drawer"}
    assert policy.predict_chunk(obs).shape == (policy.config.chunk, 4)


def test_aux_weight_without_environment_state_is_refused(tmp_path):
    plain = make_dataset(tmp_path / "plain", episodes=2, length=6, size=32)
    with pytest.raises(ConfigError, match="observation.environment_state"):
        train(_config(plain, tmp_path / "run", weight=0.5))
    with pytest.raises(ConfigError, match="env_state_dim"):
        Policy(tiny_config(aux_env_state_weight=0.5), stats())
    with pytest.raises(ConfigError, match="aux_env_state_weight"):
        PolicyConfig(aux_env_state_weight=-1.0, env_state_dim=3)
