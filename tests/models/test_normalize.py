"""normalization.json: the first format still loads, mode names are the data layer's, bad files are named."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vla.models import NormalizationStats, Policy, PolicyLoadError
from vla.models.config import ConfigError

from .helpers import obs, stats, tiny_config


def test_first_format_normalization_json_loads_with_identical_outputs(tmp_path):
    policy = Policy(tiny_config(), stats())
    policy.save(tmp_path / "p")
    s = policy.stats
    old = {"state": {k: s.state[k].tolist() for k in ("mean", "std", "min", "max")},
           "action": {k: s.action[k].tolist() for k in ("min", "max")}}  # what vla wrote before format_version 2
    (tmp_path / "p" / "normalization.json").write_text(json.dumps(old))
    loaded = Policy.from_pretrained(tmp_path / "p")
    assert loaded.stats.dataset is None
    np.testing.assert_array_equal(loaded.predict_chunk(obs(policy.config)), policy.predict_chunk(obs(policy.config)))


def test_state_modes_are_the_data_layers(tmp_path):
    p = Policy(tiny_config(state_norm="quantile"), stats())
    x = np.asarray(p.stats.state["q99"], np.float32)
    assert torch.allclose(p.normalizer.state(torch.tensor(x) + 100), torch.ones(4))  # clipped like the data side
    with pytest.raises(ConfigError, match="state_norm: expected one of min_max, mean_std, quantile"):
        tiny_config(state_norm="minmax")
    first = NormalizationStats.from_dict({"state": {k: [0.0, 1.0] for k in ("mean", "std", "min", "max")},
                                          "action": {"min": [0.0], "max": [1.0]}})
    with pytest.raises(ValueError, match="quantile normalization of 'observation.state' needs.*q01"):
        Policy(tiny_config(state_norm="quantile", state_dim=2, action_dim=1), first)


def test_broken_normalization_json_names_the_file_and_field(tmp_path):
    policy = Policy(tiny_config(), stats())
    policy.save(tmp_path / "p")
    path = tmp_path / "p" / "normalization.json"
    good = json.loads(path.read_text())
    cases = [
        ({**good, "dataset": {"action_mode": {"mode": "delta", "dims": [9]}}}, r"dims \[9\] out of range"),
        ({**good, "dataset": {"action_mode": {"mode": "relative"}}}, "cannot undo it"),
        ({**good, "format_version": 7}, "format_version 7"),
        ({**good, "state": {**good["state"], "std": [float("nan")] * 4}}, "state.std has non-finite"),
    ]
    for data, message in cases:
        path.write_text(json.dumps(data))
        with pytest.raises(PolicyLoadError, match=rf"normalization\.json.*{message}"):
            Policy.from_pretrained(tmp_path / "p")
