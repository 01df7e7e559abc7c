"""Training on some episodes only: the ``episodes=`` selection, its errors, and the cache it builds."""

from __future__ import annotations

import numpy as np
import pytest

from vla.models.config import ConfigError
from vla.train.cache import build_cache
from vla.train.config import make_config
from vla.train.episode_select import parse_episodes, select_episodes

from .tiny_dataset import make_dataset


@pytest.mark.parametrize(("spec", "expected"), [
    (None, None), ("0:3,7", [0, 1, 2, 7]), ("5, 1:3", [1, 2, 5]), ([4, 2, 2], [2, 4]), (3, [3]), ("2:2,1", [1]),
])
def test_parse_episodes(spec, expected):
    assert parse_episodes(spec) == expected


@pytest.mark.parametrize("spec", ["a:3", "1-3", [], "", [1.5], [-1], True, {"a": 1}])
def test_malformed_selection_is_refused(spec):
    with pytest.raises(ConfigError, match="episodes"):
        parse_episodes(spec)


def test_select_names_missing_episodes_and_keeps_order():
    assert select_episodes([0, 1, 2, 3], "3,1", None, "ds") == [1, 3]
    assert select_episodes([0, 1, 2, 3], "0:4", 2, "ds") == [0, 1]
    with pytest.raises(ConfigError, match=r"ds has no episode\(s\) \[9\]"):
        select_episodes([0, 1, 2, 3], "1,9", None, "ds")


def test_cache_of_a_selection_holds_exactly_those_episodes(tmp_path):
    ds = make_dataset(tmp_path / "ds", episodes=4, length=5, size=16)
    full = build_cache(ds, ["corner4"], 16, tmp_path / "cache")
    part = build_cache(ds, ["corner4"], 16, tmp_path / "cache", episodes="0,2:4")
    assert part.root != full.root and part.num_frames == 15
    keep = np.r_[0:5, 10:20]
    np.testing.assert_array_equal(part.state, full.state[keep])
    np.testing.assert_array_equal(part.images["corner4"], full.images["corner4"][keep])
    assert list(np.unique(part.episode_end)) == [5, 10, 15]
    cfg = make_config(ds, tmp_path / "run", overrides=["episodes=0:2,3"])
    assert cfg.episodes == "0:2,3"
    assert parse_episodes(make_config(ds, tmp_path / "run", overrides=["episodes=10:12"]).episodes) == [10, 11]
    with pytest.raises(ConfigError, match="episodes"):
        make_config(ds, tmp_path / "run", overrides=["episodes=x"])
