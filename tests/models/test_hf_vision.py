"""Pretrained Hugging Face vision towers, tested on tiny random models saved to a temporary folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vla.models import Policy, VisionModelNotFound

from .helpers import batch, obs, stats, tiny_config


def _save_tiny(kind: str, folder) -> str:
    import transformers as tf

    common = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                  image_size=32, patch_size=8)
    torch.manual_seed(0)
    if kind == "siglip":
        model = tf.SiglipVisionModel(tf.SiglipVisionConfig(**common))
    elif kind == "dinov2":
        model = tf.Dinov2Model(tf.Dinov2Config(**common))
    elif kind == "clip":
        model = tf.CLIPVisionModel(tf.CLIPVisionConfig(**common))
    else:  # a full CLIP model (text + vision): the loader takes its vision tower
        model = tf.CLIPModel(tf.CLIPConfig(
            text_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             vocab_size=100), vision_config=common, projection_dim=16))
    model.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("kind", ["siglip", "dinov2", "clip", "clip_full"])
def test_hf_tower_frozen_forward_predict_save_load(kind, tmp_path):
    path = _save_tiny(kind, tmp_path / kind)
    cfg = tiny_config(vision_encoder="hf", vision_path=path, vision_grid=2, image_size=48)
    policy = Policy(cfg, stats())
    tower = policy.vision[0].tower
    assert all(not p.requires_grad for p in tower.parameters())
    policy.train()
    assert not tower.training  # frozen towers stay in eval mode
    out = policy(batch(cfg))
    out["loss"].backward()
    assert all(p.grad is None for p in tower.parameters())
    policy.eval()
    o = obs(cfg)
    chunk = policy.predict_chunk(o)
    assert chunk.shape == (cfg.chunk, cfg.action_dim)
    policy.save(tmp_path / "p")
    keys = load_file(str(tmp_path / "p" / "model.safetensors")).keys()
    assert not any(".tower." in k for k in keys)  # frozen tower reloaded from vision_path, not saved
    np.testing.assert_array_equal(Policy.from_pretrained(tmp_path / "p").predict_chunk(o), chunk)


def test_hf_tower_uses_its_own_normalization(tmp_path):
    path = _save_tiny("siglip", tmp_path / "s")
    (tmp_path / "s" / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.1, 0.2, 0.3],
                                                                          "image_std": [0.4, 0.5, 0.6]}))
    policy = Policy(tiny_config(vision_encoder="hf", vision_path=path, vision_grid=2), stats())
    assert torch.allclose(policy.vision[0].mean.flatten(), torch.tensor([0.1, 0.2, 0.3]))
    dino = Policy(tiny_config(vision_encoder="hf", vision_path=_save_tiny("dinov2", tmp_path / "d"),
                              vision_grid=2), stats())
    assert torch.allclose(dino.vision[0].mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))


def test_hf_tower_fine_tuned_is_saved(tmp_path):
    path = _save_tiny("dinov2", tmp_path / "d")
    cfg = tiny_config(vision_encoder="hf", vision_path=path, vision_frozen=False, vision_grid=2)
    policy = Policy(cfg, stats())
    policy.train()
    policy(batch(cfg))["loss"].backward()
    assert any(p.grad is not None for p in policy.vision[0].tower.parameters())
    with torch.no_grad():
        for p in policy.vision[0].tower.parameters():
            p.add_(0.01)
    policy.eval()
    policy.save(tmp_path / "p")
    assert any(".tower." in k for k in load_file(str(tmp_path / "p" / "model.safetensors")))
    o = obs(cfg)
    np.testing.assert_array_equal(Policy.from_pretrained(tmp_path / "p").predict_chunk(o), policy.predict_chunk(o))


def test_missing_vision_folder(tmp_path):
    with pytest.raises(VisionModelNotFound, match="does not exist"):
        Policy(tiny_config(vision_encoder="hf", vision_path=str(tmp_path / "none")), stats())
