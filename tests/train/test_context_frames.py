"""Context cameras: the episode's first frame beside the current one, in batches, in the policy, at
inference (remembered after reset or given by the caller), in save/load and in training end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vla.models import Policy
from vla.models.config import ConfigError
from vla.train.cache import build_cache
from vla.train.config import TrainConfig
from vla.train.loop import train
from vla.train.mixture import MixtureSampler
from vla.train.sampler import BatchSampler, episode_starts

from ..models.helpers import batch as make_batch
from ..models.helpers import obs as make_obs
from ..models.helpers import stats, tiny_config
from .test_train import TINY_POLICY
from .tiny_dataset import make_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds") / "ctx", episodes=4, length=10, size=32)


def test_a_context_camera_must_be_one_of_the_cameras():
    with pytest.raises(ConfigError, match=r"context_cameras: \['topview'\] are not among"):
        tiny_config(context_cameras=["topview"])
    with pytest.raises(ConfigError, match="distinct"):
        tiny_config(context_cameras=["corner4", "corner4"])


def test_batches_carry_the_first_frame_of_each_samples_episode(dataset, tmp_path):
    cache = build_cache(dataset, ["corner4", "gripperPOV"], 32, tmp_path)
    idx = np.array([0, 3, 9, 10, 15, 39])
    np.testing.assert_array_equal(episode_starts(cache)[idx], [0, 0, 0, 10, 10, 30])
    sampler = BatchSampler(cache, 16, 4, ["corner4", "gripperPOV"], seed=0, context_cameras=["corner4"])
    batch, drawn = sampler.batch(0), sampler.indices(0)
    assert sorted(batch["context_images"]) == ["corner4"]
    first = (drawn // 10) * 10  # episodes of 10 frames
    np.testing.assert_array_equal(batch["context_images"]["corner4"].numpy(), cache.images["corner4"][first])
    assert "context_images" not in BatchSampler(cache, 4, 4, ["corner4"], seed=0).batch(0)


def test_the_mixture_sampler_carries_first_frames_too(dataset, tmp_path):
    cache = build_cache(dataset, ["corner4"], 32, tmp_path)
    sampler = MixtureSampler([cache, cache], ["a", "b"], [1.0, 1.0], False, 8, 4, ["corner4"], 32, seed=0,
                             multi_robot=False, context_cameras=["corner4"])
    which, frames = sampler.draw(0)
    got = sampler.batch(0)["context_images"]["corner4"].numpy()
    np.testing.assert_array_equal(got, cache.images["corner4"][(frames // 10) * 10])
    assert len(which) == 8


def test_the_policy_reads_the_first_frame_and_needs_it():
    torch.manual_seed(0)
    policy = Policy(tiny_config(context_cameras=["corner4"]), stats())
    batch = make_batch(policy.config)
    with pytest.raises(KeyError, match=r"context_images.*\['corner4'\]"):
        policy(batch)
    batch["context_images"] = {"corner4": batch["images"]["corner4"].flip(0)}
    loss = policy(batch)["loss"]
    loss.backward()
    assert policy.context_emb is not None and float(policy.context_emb.grad.abs().sum()) > 0
    assert Policy(tiny_config(), stats()).context_emb is None


def test_predict_chunk_remembers_the_episodes_first_frame_until_reset():
    torch.manual_seed(0)
    policy = Policy(tiny_config(context_cameras=["corner4"]), stats()).eval()
    first, later = make_obs(policy.config, seed=1), make_obs(policy.config, seed=2)
    policy.reset()
    policy.predict_chunk(first)
    remembered = policy.predict_chunk(later)
    given = policy.predict_chunk({**later, "context_images": {"corner4": first["images"]["corner4"]}})
    np.testing.assert_array_equal(remembered, given)
    policy.reset()
    fresh = policy.predict_chunk(later)  # a new episode: `later` is now its first frame
    own = policy.predict_chunk({**later, "context_images": {"corner4": later["images"]["corner4"]}})
    np.testing.assert_array_equal(fresh, own)
    assert not np.allclose(fresh, remembered)  # the first frame changes the prediction
    with pytest.raises(KeyError, match="context_images"):
        policy.predict_chunk({**later, "context_images": {"gripperPOV": later["images"]["gripperPOV"]}})
    with pytest.raises(ValueError, match=r"context_images'\]\['corner4'\]: expected uint8"):
        policy.predict_chunk({**later, "context_images": {"corner4": np.zeros((32, 32), np.uint8)}})


def test_training_with_a_context_camera_saves_a_policy_that_loads(dataset, tmp_path):
    out = tmp_path / "run"
    cfg = TrainConfig(dataset=str(dataset), out=str(out), steps=4, batch_size=4, log_every=1, checkpoint_every=4,
                      warmup_steps=1, progress=False, cache_dir=str(tmp_path / "cache"),
                      policy={**TINY_POLICY, "context_cameras": ["corner4"]})
    train(cfg)
    saved = json.loads((out / "policy" / "config.json").read_text())
    assert saved["context_cameras"] == ["corner4"]
    policy = Policy.from_pretrained(out / "policy")
    assert policy.context_emb is not None
    chunk = policy.predict_chunk(make_obs(policy.config))
    assert chunk.shape == (policy.config.chunk, 4) and np.isfinite(chunk).all()
