"""Streaming statistics: exact moments, KLL quantiles within their stated rank error, merging, NaN."""

from __future__ import annotations

import numpy as np
import pytest

from vla.data.layout import QUANTILES
from vla.data.stats import SKETCH_K, FeatureStats, StatsAccumulator, rank_error, sketch_k


def _ranks(sorted_col: np.ndarray, value: float) -> tuple[float, float]:
    """The normalized rank interval [lo, hi] that `value` occupies in the sorted data."""
    n = len(sorted_col)
    return np.searchsorted(sorted_col, value, side="left") / n, np.searchsorted(sorted_col, value, side="right") / n


def test_merged_episode_sketches_give_quantiles_within_the_stated_rank_error():
    rng = np.random.default_rng(0)
    # 2,000 episodes of 100 frames, 3 dims with different shapes of distribution: the sketch leaves exact mode
    episodes = [np.stack([rng.normal(e % 7, 1 + e % 3, 100), rng.exponential(2.0, 100),
                          rng.integers(0, 5, 100).astype(np.float64)], axis=1) for e in range(2000)]
    total = FeatureStats()
    for ep in episodes:
        one = FeatureStats()
        one.add(ep)
        total.merge(one)
    x = np.concatenate(episodes)
    s = total.result()
    eps = total.rank_error()
    assert eps == pytest.approx(rank_error(SKETCH_K)) and 0 < eps < 0.003  # KLL k=1000: 0.28% at 99% confidence
    assert int(s["count"][0]) == len(x) == total.n
    np.testing.assert_array_equal(s["min"], x.min(0))
    np.testing.assert_array_equal(s["max"], x.max(0))
    np.testing.assert_allclose(s["mean"], x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s["std"], x.std(0), rtol=1e-10)
    worst = 0.0
    for key, q in QUANTILES.items():
        for d in range(x.shape[1]):
            col = np.sort(x[:, d])
            lo, hi = _ranks(col, s[key][d])
            assert s[key][d] in col  # a KLL quantile is one of the values
            miss = max(0.0, lo - q, q - hi)  # distance from q to the ranks the returned value holds
            assert miss <= eps, (key, d, lo, hi)
            worst = max(worst, miss)
    # the bound is not vacuous: the continuous columns do land off their exact quantile
    assert any(abs(s[k][0] - np.quantile(x[:, 0], q, method="inverted_cdf")) > 0 for k, q in QUANTILES.items())
    assert worst < eps


def test_small_data_is_exact_and_merge_equals_one_pass():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 4)), rng.normal(3, 2, size=(25, 4))
    one = FeatureStats()
    one.add(np.concatenate([a, b]))
    fa, fb = FeatureStats(), FeatureStats()
    fa.add(a)
    fb.add(b)
    fa.merge(fb)
    r1, r2 = one.result(), fa.result()
    assert one.rank_error() == 0.0
    for key in r1:
        np.testing.assert_allclose(r2[key], r1[key], rtol=1e-12, err_msg=key)
    x = np.concatenate([a, b])
    for key, q in QUANTILES.items():
        np.testing.assert_array_equal(r1[key], np.quantile(x, q, axis=0, method="inverted_cdf"))


def test_nan_dimension_reads_nan_and_others_stay_exact():
    x = np.arange(20.0).reshape(10, 2)
    x[3, 1] = np.nan
    s = FeatureStats()
    s.add(x)
    r = s.result()
    assert np.isnan([r[k][1] for k in ("min", "max", "mean", "std", "q50")]).all()
    assert (r["min"][0], r["max"][0], r["q50"][0]) == (0.0, 18.0, 8.0)


def test_memory_does_not_grow_with_the_number_of_values():
    f = FeatureStats()
    rng = np.random.default_rng(2)
    f.add(rng.normal(size=(1000, 2)))
    small = sum(s.num_retained for s in f._sketches)
    for _ in range(200):
        f.add(rng.normal(size=(1000, 2)))
    big = sum(s.num_retained for s in f._sketches)
    assert f.n == 201_000 and big < 3.5 * SKETCH_K * 2 and big < 201_000 * 2 / 20
    assert small <= 2000


def test_accumulator_images_wide_features_and_dimension_changes():
    acc = StatsAccumulator()
    frames = np.zeros((5, 8, 8, 3), np.uint8)
    frames[..., 0] = 255
    acc.add_images("cam", frames)
    acc.add({"action": np.ones((5, 3))})
    r = acc.result()
    assert r["cam"]["mean"].shape == (3, 1, 1) and r["cam"]["mean"][0, 0, 0] == 1.0 and r["cam"]["count"][0] == 5
    assert r["action"]["q99"].tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="'action'.*4 values per frame.*3"):
        acc.add({"action": np.ones((2, 4))})
    assert sketch_k(4) == SKETCH_K and sketch_k(512) < SKETCH_K and sketch_k(10**6) == 8
