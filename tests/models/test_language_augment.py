"""Language augmentation: word dropout, instruction dropout to a learned "no instruction" token."""

from __future__ import annotations

import pytest
import torch

from vla.models import ConfigError, Policy
from vla.models.language import drop_words

from .helpers import batch, obs, stats, tiny_config


def test_drop_words_keeps_at_least_one_word_and_only_removes():
    g = torch.Generator().manual_seed(0)
    text = "pick up the red block and put it in the bowl"
    outs = [drop_words(text, 0.5, g) for _ in range(200)]
    assert all(o.split() for o in outs)
    assert all(set(o.split()) <= set(text.split()) for o in outs)
    kept = sum(len(o.split()) for o in outs) / (200 * len(text.split()))
    assert 0.4 < kept < 0.6
    assert drop_words(text, 0.0, g) == text and drop_words("reach", 0.9, g) == "reach"
    assert {drop_words(text, 0.99, g) for _ in range(50)} <= set(text.split())  # one word survives


def test_dropout_fields_are_validated():
    with pytest.raises(ConfigError, match="instruction_dropout"):
        tiny_config(instruction_dropout=1.0)
    with pytest.raises(ConfigError, match="word_dropout"):
        tiny_config(word_dropout=-0.1)


def test_instruction_dropout_replaces_about_p_of_the_instructions_by_the_null_token():
    torch.manual_seed(0)
    policy = Policy(tiny_config(instruction_dropout=0.5), stats()).train()
    texts = ["open the drawer", "close the window"] * 100
    lang, mask = policy._language_tokens(texts)
    null_rows = (mask.sum(1) == 1) & torch.isclose(lang[:, 0], policy.null_instruction[0]).all(-1)
    assert 0.35 < null_rows.float().mean().item() < 0.65
    assert torch.all(lang[null_rows, 1:] == 0)
    policy.eval()  # no dropout at inference: every row keeps its words
    _, mask = policy._language_tokens(texts)
    assert bool((mask.sum(1) > 1).all())


def test_empty_instruction_uses_the_null_token_only_when_trained_with_it():
    torch.manual_seed(0)
    with_null = Policy(tiny_config(instruction_dropout=0.3), stats()).eval()
    o = obs(with_null.config)
    a_empty = with_null.predict_chunk({**o, "instruction": ""})
    a_text = with_null.predict_chunk(o)
    assert a_empty.shape == a_text.shape and not (a_empty == a_text).all()
    plain = Policy(tiny_config(instruction_dropout=0.0), stats()).eval()
    with pytest.raises(ValueError, match="instruction_dropout"):
        plain.predict_chunk({**obs(plain.config), "instruction": ""})


def test_film_off_trains_and_round_trips_with_the_null_token(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config(film=False, instruction_dropout=0.5, word_dropout=0.2)
    policy = Policy(cfg, stats())
    assert policy.lang_pool is None
    policy.train()
    policy(batch(cfg, b=6))["loss"].backward()
    assert policy.null_instruction.grad is not None  # in the graph even for rows that keep their text
    policy.eval().save(tmp_path / "p")
    loaded = Policy.from_pretrained(tmp_path / "p")
    o = obs(cfg)
    assert (loaded.predict_chunk(o) == policy.predict_chunk(o)).all()
    assert (loaded.predict_chunk({**o, "instruction": ""}) == policy.predict_chunk({**o, "instruction": ""})).all()
