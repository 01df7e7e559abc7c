"""Policy: shapes, masks, validation, normalization, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vla.models import ConfigError, Policy, PolicyConfig, PolicyLoadError

from .helpers import batch, obs, stats, tiny_config


@pytest.fixture(scope="module")
def policy() -> Policy:
    torch.manual_seed(0)
    return Policy(tiny_config(), stats()).eval()


def test_config_json_roundtrip_and_unknown_keys():
    cfg = tiny_config(temporal_ensemble=0.01)
    assert PolicyConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError, match="unknown key.*'bogus'"):
        PolicyConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ConfigError, match="n_action_steps"):
        tiny_config(n_action_steps=9)
    with pytest.raises(ConfigError, match="vision_path"):
        tiny_config(vision_encoder="hf")


def test_default_config_is_valid():
    cfg = PolicyConfig()
    assert cfg.chunk == 8 and cfg.n_action_steps == 4 and cfg.image_size == 128 and len(cfg.cameras) == 2


def test_forward_returns_losses_and_backprops(policy):
    cfg = policy.config
    policy.train()
    out = policy(batch(cfg))
    assert set(out) >= {"loss", "l1"} and out["loss"].ndim == 0
    out["loss"].backward()
    grads = [p.grad for p in policy.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    policy.zero_grad(set_to_none=True)
    policy.eval()


def test_action_mask_hides_positions_past_episode_end(policy):
    b = batch(policy.config)
    b["action_mask"][:, 2:] = False
    loss1 = policy(b)["loss"]
    b2 = {**b, "action": b["action"].clone()}
    b2["action"][:, 2:] = 100.0  # garbage past the end must not matter
    assert torch.equal(loss1, policy(b2)["loss"])
    b3 = {**b, "action": b["action"].clone()}
    b3["action"][:, :2] += 1.0
    assert not torch.equal(loss1, policy(b3)["loss"])


def test_predict_chunk_shape_units_and_resize(policy):
    cfg = policy.config
    chunk = policy.predict_chunk(obs(cfg))
    assert chunk.shape == (cfg.chunk, cfg.action_dim) and chunk.dtype == np.float32
    lo, hi = policy.stats.action["min"], policy.stats.action["max"]
    assert np.all(chunk >= lo - 1e-5) and np.all(chunk <= hi + 1e-5)
    assert policy.predict_chunk(obs(cfg, size=48)).shape == (cfg.chunk, cfg.action_dim)  # resized inside


def test_predict_is_deterministic_and_unaffected_by_training_mode(policy):
    o = obs(policy.config)
    a = policy.predict_chunk(o)
    policy.train()
    b = policy.predict_chunk(o)  # eval behaviour inside (no augmentation), mode restored
    assert policy.training
    policy.eval()
    np.testing.assert_array_equal(a, b)


def test_instruction_changes_prediction(policy):
    o = obs(policy.config)
    a = policy.predict_chunk(o)
    b = policy.predict_chunk({**o, "instruction": "close the drawer"})
    assert not np.allclose(a, b)


def test_observation_validation_names_what_is_wrong(policy):
    o = obs(policy.config)
    with pytest.raises(KeyError, match="gripperPOV"):
        policy.predict_chunk({**o, "images": {"corner4": o["images"]["corner4"]}})
    with pytest.raises(KeyError, match="state"):
        policy.predict_chunk({"images": o["images"], "instruction": "x"})
    with pytest.raises(ValueError, match="state"):
        policy.predict_chunk({**o, "state": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="uint8"):
        policy.predict_chunk({**o, "images": {k: v.astype(np.float32) for k, v in o["images"].items()}})
    with pytest.raises(ValueError, match="instruction"):
        policy.predict_chunk({**o, "instruction": 3})


def test_batch_validation(policy):
    b = batch(policy.config)
    with pytest.raises(KeyError, match="action"):
        policy({k: v for k, v in b.items() if k != "action"})
    with pytest.raises(ValueError, match="action_mask"):
        policy({**b, "action_mask": torch.ones(3, 7, dtype=torch.bool)})


def test_normalization_round_trip(policy):
    x = torch.tensor(policy.stats.action["min"] + 0.3 * (policy.stats.action["max"] - policy.stats.action["min"]))
    n = policy.normalizer.action(x)
    assert torch.all(n >= -1) and torch.all(n <= 1)
    torch.testing.assert_close(policy.normalizer.unaction(n), x)


def test_save_load_gives_identical_outputs(policy, tmp_path):
    policy.save(tmp_path / "p")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["config.json", "model.safetensors",
                                                                 "normalization.json"]
    keys = load_file(str(tmp_path / "p" / "model.safetensors")).keys()
    assert not any("text" in k or "embeddings.word" in k for k in keys)  # frozen MiniLM is not saved
    assert (tmp_path / "p" / "model.safetensors").stat().st_size < 2_000_000
    loaded = Policy.from_pretrained(tmp_path / "p")
    o = obs(policy.config)
    np.testing.assert_array_equal(policy.predict_chunk(o), loaded.predict_chunk(o))
    assert loaded.config == policy.config


def test_from_pretrained_errors_are_clear(policy, tmp_path):
    with pytest.raises(PolicyLoadError, match="does not exist"):
        Policy.from_pretrained(tmp_path / "nope")
    folder = policy.save(tmp_path / "p")
    (folder / "normalization.json").unlink()
    with pytest.raises(PolicyLoadError, match="missing.*normalization.json"):
        Policy.from_pretrained(folder)
    policy.save(folder)
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(PolicyLoadError, match="model.safetensors"):
        Policy.from_pretrained(folder)
    policy.save(folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "colour": "red"}))
    with pytest.raises(PolicyLoadError, match="unknown key.*colour"):
        Policy.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**cfg, "d_model": 64}))
    with pytest.raises(PolicyLoadError, match="does not match config.json|size mismatch"):
        Policy.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**cfg, "state_dim": 7}))
    with pytest.raises(PolicyLoadError, match="state_dim"):
        Policy.from_pretrained(folder)


def test_missing_language_model_folder_is_a_clear_error(tmp_path):
    from vla.models import LanguageModelNotFound

    with pytest.raises(LanguageModelNotFound, match="language_path|does not exist"):
        Policy(tiny_config(language_encoder="hf", language_path=str(tmp_path / "missing")), stats())


def test_separate_encoders_per_camera_and_min_max_state():
    torch.manual_seed(0)
    p = Policy(tiny_config(share_vision_encoder=False, state_norm="min_max", film=False), stats())
    assert len(p.vision) == 2
    assert p.predict_chunk(obs(p.config)).shape == (4, 4)
