"""Components: language cache, action queue, temporal ensembling, augmentation, heads, encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vla.models import ActionQueue, Policy, TemporalEnsembler, get_text_encoder
from vla.models.heads import HEADS, RegressionHead, build_head, register_head
from vla.models.image_ops import random_shift, resize_uint8
from vla.models.vision_conv import ConvEncoder, SpatialSoftmax

from .helpers import obs, stats, tiny_config


def test_language_cache_encodes_each_instruction_once():
    enc = get_text_encoder("minilm", None)
    assert get_text_encoder("minilm", None) is enc  # one per process
    texts = ["a unique instruction 1", "a unique instruction 2 longer than the other"]
    before = enc.num_encoded
    f1, m1 = enc.encode(texts + texts, 16)
    assert enc.num_encoded == before + 2
    f2, m2 = enc.encode(list(reversed(texts)), 16)
    assert enc.num_encoded == before + 2
    assert f1.shape[0] == 4 and f1.shape[2] == 384 and m1.dtype == torch.bool
    assert m1[0].sum() < m1[1].sum()  # padding mask reflects the token count
    torch.testing.assert_close(f2[1, : m2[1].sum()], f1[0, : m1[0].sum()])


def test_language_cache_keeps_the_most_recently_used():
    from vla.models.language import FrozenTextEncoder

    shared = get_text_encoder("minilm", None)
    enc = FrozenTextEncoder(shared.folder, cache_size=3)
    f_a, _ = enc.encode(["pick a", "pick b", "pick c"], 16)
    enc.encode(["pick a"], 16)                      # a is now the most recent
    enc.encode(["pick d", "pick e"], 16)            # evicts b and c, keeps a
    assert len(enc._cache) == 3 and enc.num_encoded == 5
    f, _ = enc.encode(["pick a"], 16)
    assert enc.num_encoded == 5
    torch.testing.assert_close(f[0], f_a[0, : f.shape[1]])
    enc.encode(["pick b"], 16)
    assert enc.num_encoded == 6
    # a batch with more distinct strings than the cache holds is still answered in full
    f, m = enc.encode([f"place {i}" for i in range(5)], 16)
    assert f.shape[0] == 5 and int(m.sum(1).min()) >= 3 and len(enc._cache) == 3


def test_language_features_are_token_level():
    enc = get_text_encoder("minilm", None)
    f, m = enc.encode(["open the drawer", "close the drawer"], 16)
    assert m.sum(1).tolist()[0] >= 4  # CLS + 3 words + SEP
    assert not torch.allclose(f[0, 1], f[1, 1])  # "open" vs "close" token


def test_action_queue_executes_k_of_h():
    calls = []

    def predict():
        calls.append(1)
        return np.arange(8)[:, None] * np.ones((8, 2)) + 10 * len(calls)

    q = ActionQueue(3)
    out = [q.next(predict)[0] for _ in range(7)]
    assert out == [10, 11, 12, 20, 21, 22, 30] and len(calls) == 3
    q.reset()
    assert len(q) == 0


def test_temporal_ensembling_weights_oldest_first():
    chunks = [np.full((3, 1), float(v)) for v in (1.0, 2.0, 4.0, 8.0)]
    it = iter(chunks)
    ens = TemporalEnsembler(coeff=0.5, chunk=3)
    out = [ens.next(lambda: next(it))[0] for _ in range(4)]
    w = np.exp(-0.5 * np.arange(3))
    assert out[0] == 1.0
    assert np.isclose(out[1], (w[0] * 1 + w[1] * 2) / w[:2].sum())
    assert np.isclose(out[2], (w[0] * 1 + w[1] * 2 + w[2] * 4) / w.sum())
    assert np.isclose(out[3], (w[0] * 2 + w[1] * 4 + w[2] * 8) / w.sum())  # chunk from t=0 expired
    ens.reset()
    assert ens.next(lambda: np.full((3, 1), 5.0))[0] == 5.0


def test_policy_select_action_uses_queue_and_reset():
    p = Policy(tiny_config(chunk=4, n_action_steps=2), stats()).eval()
    calls = []
    original = p.predict_chunk

    def counting(o):
        calls.append(1)
        return original(o)

    p.predict_chunk = counting
    o = obs(p.config)
    chunk = original(o)
    a0, a1 = p.select_action(o), p.select_action(o)
    np.testing.assert_allclose(np.stack([a0, a1]), chunk[:2], rtol=1e-6)
    p.select_action(o)
    assert len(calls) == 2
    p.reset()
    p.select_action(o)
    assert len(calls) == 3


def test_policy_temporal_ensemble_queries_every_step():
    p = Policy(tiny_config(temporal_ensemble=0.01, chunk=4, n_action_steps=2), stats()).eval()
    assert isinstance(p._selector, TemporalEnsembler)
    chunks = []
    original = p.predict_chunk

    def counting(o):
        c = original(o) + len(chunks)  # each query's chunk differs, so the mean can be checked
        chunks.append(c)
        return c

    p.predict_chunk = counting
    a = [p.select_action(obs(p.config)) for _ in range(3)]
    assert len(chunks) == 3  # one query per step (an action queue would have queried twice)
    assert all(x.shape == (4,) for x in a)
    w = np.exp(-0.01 * np.arange(3))  # step 2 averages the predictions of the chunks made at 0, 1, 2
    expected = (w[0] * chunks[0][2] + w[1] * chunks[1][1] + w[2] * chunks[2][0]) / w.sum()
    np.testing.assert_allclose(a[2], expected, rtol=1e-5)
    p.reset()
    p.select_action(obs(p.config))
    assert len(chunks) == 4


def test_random_shift_preserves_shape_and_content_range():
    x = torch.randint(0, 256, (5, 16, 16, 3), dtype=torch.uint8)
    torch.manual_seed(0)
    y = random_shift(x, 3)
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert torch.equal(random_shift(x, 0), x)
    padded = torch.nn.functional.pad(x.permute(0, 3, 1, 2).float(), (3, 3, 3, 3), mode="replicate")
    for i in range(5):  # each output is a crop of the replicate-padded input
        crops = [padded[i, :, dy:dy + 16, dx:dx + 16] for dy in range(7) for dx in range(7)]
        assert any(torch.equal(c, y[i].permute(2, 0, 1).float()) for c in crops)
    assert not torch.equal(y, x)


def test_augmentation_only_in_training_mode(monkeypatch):
    import vla.models.policy as policy_mod

    calls = []
    monkeypatch.setattr(policy_mod, "random_shift", lambda img, pad: calls.append(pad) or img)
    p = Policy(tiny_config(), stats())
    from .helpers import batch

    p.eval()
    p(batch(p.config))
    assert calls == []
    p.train()
    p(batch(p.config))
    assert calls == [2, 2]


def test_resize_uint8():
    x = torch.randint(0, 256, (2, 64, 48, 3), dtype=torch.uint8)
    y = resize_uint8(x, 32)
    assert y.shape == (2, 32, 32, 3) and y.dtype == torch.uint8


def test_spatial_softmax_finds_a_bright_spot():
    ss = SpatialSoftmax(1, 1)
    with torch.no_grad():
        ss.proj.weight.fill_(1.0)
        ss.proj.bias.zero_()
        ss.log_temperature.fill_(-3.0)  # sharper than the default start
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 2, 6] = 10.0  # row 2 (y), column 6 (x)
    xy = ss(x)[0]
    assert torch.allclose(xy, torch.tensor([0.5, -0.5]), atol=1e-3)


def test_conv_encoder_token_count_and_film_condition():
    enc = ConvEncoder(32, [8, 16, 32], [0, 1, 1], grid=2, keypoints=6, keypoint_tokens=2, cond_dim=32,
                      stem_stride=4, keypoint_stage=1)
    x = torch.rand(3, 3, 64, 64)
    cond = torch.randn(3, 32)
    out = enc(x, cond)
    assert out.shape == (3, enc.num_tokens, 32) and enc.num_tokens == 6
    with torch.no_grad():
        for m in enc.modules():
            if hasattr(m, "film") and m.film is not None:
                m.film.weight.normal_()
    assert not torch.allclose(enc(x, cond), enc(x, -cond))


def test_head_registry():
    assert HEADS["regression"] is RegressionHead
    with pytest.raises(ValueError, match="unknown action head"):
        build_head("nope", 8, 2, 3)
    with pytest.raises(ValueError, match="already registered"):
        register_head("regression")(RegressionHead)
    head = build_head("regression", 8, 2, 3)
    feats, target = torch.randn(4, 3, 8), torch.randn(4, 3, 2)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    pred = head.predict(feats)
    expected = ((pred - target).abs() * mask[..., None]).sum() / (mask.sum() * 2)
    torch.testing.assert_close(head.loss(feats, target, mask)["loss"], expected)


def test_policy_hooks_for_the_failure_monitor_and_recovery():
    p = Policy(tiny_config(chunk=4, n_action_steps=2), stats()).eval()
    o = obs(p.config)
    assert p.last_features is None and p.resample_last(3) is None
    calls = []
    original = p.predict_chunk

    def counting(x):
        calls.append(1)
        return original(x)

    p.predict_chunk = counting
    p.select_action(o)
    f = p.last_features
    assert f.shape == (32,) and np.isfinite(f).all()
    s1, s2 = p.resample_last(3, seed=7), p.resample_last(3, seed=7)
    assert s1.shape == (3, 4, 4) and np.array_equal(s1, s2)  # seeded: reproducible
    p.select_action(o)
    assert len(calls) == 1
    p.flush_actions()  # the queue is dropped: the next step predicts anew
    p.select_action(o)
    assert len(calls) == 2
    p.set_temporal_ensemble(0.01)  # replan: a chunk every step
    assert isinstance(p._selector, TemporalEnsembler)
    for _ in range(3):
        p.select_action(o)
    assert len(calls) == 5
    p.set_temporal_ensemble(None)  # back to the configured queue, empty
    p.select_action(o)
    p.select_action(o)
    assert len(calls) == 6 and not isinstance(p._selector, TemporalEnsembler)
    p.reset()
    assert p.last_features is None
