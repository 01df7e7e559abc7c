"""Multi-robot policies: the embodiment registry, padding and masks, per-robot normalization, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vla.models import Policy
from vla.models.config import ConfigError
from vla.models.embodiments import Embodiment, EmbodimentError, EmbodimentRegistry, PaddedNormalizer
from vla.models.serialization import PolicyLoadError

from .helpers import stats, tiny_config

HEADS = ["regression", "bins", "diffusion", "flow"]
# robot "arm7": 9-D state, 7-D actions, both cameras; robot "arm4": 4-D state and actions, corner4 only
ROBOTS = {"arm7": (9, 7, ["corner4", "gripperPOV"]), "arm4": (4, 4, ["corner4"])}


def registry() -> EmbodimentRegistry:
    out = []
    for i, (name, (s, a, cams)) in enumerate(ROBOTS.items()):
        rng = np.random.default_rng(i)
        st_ = stats(s, a)
        st_.state["mean"] = st_.state["mean"] + rng.normal(size=s)
        out.append(Embodiment(name, st_, [f"s{j}" for j in range(s)], [f"a{j}" for j in range(a)], 10.0 + i, cams))
    return EmbodimentRegistry(out)


def policy(head: str = "regression", mode: str = "pad", extra: int = 0) -> Policy:
    """A two-robot policy, padded to the larger robot's sizes plus ``extra`` dims."""
    reg = registry()
    cfg = tiny_config(head=head, state_dim=reg.max_state_dim + extra, action_dim=reg.max_action_dim + extra,
                      embodiments=reg.names, embodiment_mode=mode)
    torch.manual_seed(0)
    return Policy(cfg, reg.embodiments[0].stats, reg)


def mixed_batch(p: Policy, b: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    c = p.config
    names = ["arm7", "arm4"] * (b // 2)
    state = torch.randn(b, c.state_dim, generator=g)
    action = torch.rand(b, c.chunk, c.action_dim, generator=g) * 4 - 2
    images = {cam: torch.randint(0, 256, (b, c.image_size, c.image_size, 3), dtype=torch.uint8, generator=g)
              for cam in c.cameras}
    return {"images": images, "state": state, "action": action, "instruction": ["open the drawer"] * b,
            "action_mask": torch.ones(b, c.chunk, dtype=torch.bool), "embodiment": names}


def robot_obs(p: Policy, name: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    e = p.registry[name]
    s = p.config.image_size
    return {"images": {cam: rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for cam in e.cameras},
            "state": rng.normal(size=e.state_dim).astype(np.float32), "instruction": "open the drawer"}


def _losses(p: Policy, batch: dict) -> dict[str, float]:
    torch.manual_seed(1)
    return {k: float(v.detach()) for k, v in p(batch).items()}


@pytest.mark.parametrize("extra", [0, 3])
@pytest.mark.parametrize("mode", ["pad", "projection"])
@pytest.mark.parametrize("head", HEADS)
def test_padded_dims_never_change_the_loss(head, mode, extra):
    p = policy(head, mode, extra).train()
    batch = mixed_batch(p)
    base = _losses(p, batch)
    noisy = {**batch, "state": batch["state"].clone(), "action": batch["action"].clone(),
             "images": {k: v.clone() for k, v in batch["images"].items()}}
    noisy["state"][1::2, 4:] = 1e3  # arm4's padded state dims
    noisy["action"][1::2, :, 4:] = -1e3  # arm4's padded action dims
    noisy["state"][0::2, 9:] = -1e3  # arm7's (with extra > 0)
    noisy["action"][0::2, :, 7:] = 1e3
    noisy["images"]["gripperPOV"][1::2] = 255  # the camera arm4 does not have (masked)
    assert _losses(p, noisy) == pytest.approx(base, rel=1e-5, abs=1e-6)
    changed = {**batch, "action": batch["action"].clone()}
    changed["action"][1::2, :, :4] += 0.5  # a real dim does change it
    assert _losses(p, changed)["loss"] != pytest.approx(base["loss"], rel=1e-4)


@pytest.mark.parametrize("mode", ["pad", "projection"])
@pytest.mark.parametrize("head", HEADS)
def test_each_robot_gets_its_own_dims_and_extra_cameras_are_ignored(head, mode):
    p = policy(head, mode).eval()
    for name, (_, a, _) in ROBOTS.items():
        obs = robot_obs(p, name)
        chunk = p.predict_chunk(obs, embodiment=name, seed=3)
        assert chunk.shape == (p.config.chunk, a) and np.isfinite(chunk).all()
        assert np.array_equal(chunk, p.predict_chunk({**obs, "embodiment": name}, seed=3))
    obs = robot_obs(p, "arm4")
    extra = {**obs, "images": {**obs["images"], "gripperPOV": np.full((32, 32, 3), 255, np.uint8)}}
    assert np.array_equal(p.predict_chunk(obs, embodiment="arm4", seed=3),
                          p.predict_chunk(extra, embodiment="arm4", seed=3))


def test_a_robot_must_be_named_and_known_and_its_state_checked():
    p = policy().eval()
    with pytest.raises(EmbodimentError, match=r"several robots \['arm7', 'arm4'\]"):
        p.predict_chunk(robot_obs(p, "arm7"))
    with pytest.raises(EmbodimentError, match="'ur5'.*knows"):
        p.predict_chunk(robot_obs(p, "arm7"), embodiment="ur5")
    with pytest.raises(ValueError, match=r"expected shape \(4,\).*arm4"):
        p.predict_chunk(robot_obs(p, "arm7"), embodiment="arm4")
    with pytest.raises(KeyError, match="embodiment"):
        p({k: v for k, v in mixed_batch(p).items() if k != "embodiment"})


def test_robot_units_round_trip_through_the_padded_normalizer():
    reg = registry()
    pn = PaddedNormalizer(reg, "mean_std")
    p = policy()
    rng = np.random.default_rng(5)
    for i, e in enumerate(reg.embodiments):
        lo, hi = e.stats.action["min"], e.stats.action["max"]
        act = torch.as_tensor(rng.uniform(lo, hi, size=(2, 3, e.action_dim)), dtype=torch.float32)
        padded = torch.nn.functional.pad(act, (0, reg.max_action_dim - e.action_dim), value=7.0)
        ids = torch.full((2,), i)
        model = pn.action(padded, ids)
        assert model.abs().max() <= 1.0 + 1e-5 and (model[..., e.action_dim:] == 0).all()
        back = p.robot_normalizer(e.name).unaction(model[..., : e.action_dim])
        assert torch.allclose(back, act, atol=1e-4)
        state = torch.as_tensor(rng.normal(size=(2, e.state_dim)), dtype=torch.float32)
        ns = pn.state(torch.nn.functional.pad(state, (0, reg.max_state_dim - e.state_dim), value=-9.0), ids)
        assert torch.allclose(ns[:, : e.state_dim], p.robot_normalizer(e.name).state(state), atol=1e-5)
        assert (ns[:, e.state_dim:] == 0).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.floats(-1e6, 1e6, allow_nan=False))
def test_padding_value_never_reaches_model_space(s_dim, a_dim, fill):
    other = Embodiment("big", stats(9, 9), cameras=["corner4"])
    small = Embodiment("small", stats(s_dim, a_dim), cameras=["corner4"])
    pn = PaddedNormalizer(EmbodimentRegistry([other, small]), "quantile")
    state = torch.full((1, 9), fill)
    action = torch.full((1, 2, 9), fill)
    ids = torch.ones(1, dtype=torch.long)
    assert (pn.state(state, ids)[:, s_dim:] == 0).all() and (pn.action(action, ids)[..., a_dim:] == 0).all()
    assert pn.action_dims(ids).sum() == a_dim


@pytest.mark.parametrize("mode", ["pad", "projection"])
@pytest.mark.parametrize("head", ["regression", "flow"])
def test_a_two_robot_policy_saves_and_loads(tmp_path, head, mode):
    p = policy(head, mode).eval()
    p.save(tmp_path / "pol")
    saved = json.loads((tmp_path / "pol" / "embodiments.json").read_text())
    assert [e["name"] for e in saved["embodiments"]] == ["arm7", "arm4"]
    assert saved["embodiments"][1]["cameras"] == ["corner4"] and saved["embodiments"][0]["action_dim"] == 7
    q = Policy.from_pretrained(tmp_path / "pol")
    assert q.embodiment_names == ["arm7", "arm4"]
    for name in ROBOTS:
        obs = robot_obs(p, name, seed=2)
        assert np.array_equal(p.predict_chunk(obs, embodiment=name, seed=4),
                              q.predict_chunk(obs, embodiment=name, seed=4))
    (tmp_path / "pol" / "embodiments.json").unlink()
    with pytest.raises(PolicyLoadError, match="embodiments.json: missing"):
        Policy.from_pretrained(tmp_path / "pol")


def test_registry_and_config_must_agree():
    reg = registry()
    with pytest.raises(ConfigError, match="needs their registry"):
        Policy(tiny_config(state_dim=9, action_dim=7, embodiments=reg.names), reg.embodiments[0].stats)
    with pytest.raises(ConfigError, match="largest"):
        Policy(tiny_config(state_dim=4, action_dim=7, embodiments=reg.names), reg.embodiments[0].stats, reg)
    with pytest.raises(ConfigError, match="2\\+ distinct"):
        tiny_config(embodiments=["only"])
    with pytest.raises(ConfigError, match="embodiment_mode"):
        tiny_config(embodiment_mode="adapter")
    bad = reg.to_dict()
    bad["embodiments"][0]["state_dim"] = 3
    with pytest.raises(EmbodimentError, match=r"embodiments\[0\].state_dim"):
        EmbodimentRegistry.from_dict(bad)
    assert EmbodimentRegistry.from_json(reg.to_json()).to_dict() == reg.to_dict()


@pytest.mark.parametrize("shared_vision", [True, False])
def test_a_camera_a_robot_lacks_is_never_encoded(shared_vision):
    """arm4 has no gripperPOV: its rows of that camera never reach the vision encoder, and a sample's features
    are the same alone as inside a mixed batch."""
    reg = registry()
    cfg = tiny_config(state_dim=reg.max_state_dim, action_dim=reg.max_action_dim, embodiments=reg.names,
                      share_vision_encoder=shared_vision)
    torch.manual_seed(0)
    p = Policy(cfg, reg.embodiments[0].stats, reg).eval()
    batch = mixed_batch(p, b=4)
    ids = torch.tensor([p._embodiment_index(n) for n in batch["embodiment"]])
    seen: list[int] = []
    hooks = [v.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape[0])) for v in p.vision]
    with torch.no_grad():
        full = p.encode(batch["images"], batch["state"], batch["instruction"], ids)  # [4, H, d]
        # 2 arm7 rows x 2 cameras + 2 arm4 rows x corner4 only
        assert sum(seen) == 6, seen
        seen.clear()
        arm4 = torch.tensor([1])  # a batch of one arm4 sample: gripperPOV has no row, one row runs (DDP)
        alone = p.encode({k: v[arm4] for k, v in batch["images"].items()}, batch["state"][arm4],
                         ["open the drawer"], ids[arm4])
        assert sum(seen) == 2, seen
        other = {k: v.clone() for k, v in batch["images"].items()}
        other["gripperPOV"][1] = 255 - other["gripperPOV"][1]  # the lacking camera's pixels change
        changed = p.encode(other, batch["state"], batch["instruction"], ids)
    for h in hooks:
        h.remove()
    assert torch.allclose(full[1], alone[0], atol=1e-5)
    assert torch.allclose(full, changed, atol=1e-6)
