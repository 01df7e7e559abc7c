"""Feature statistics (min, max, mean, std, count, q01..q99) as in LeRobot's meta/stats.json, streamed.

`FeatureStats` accumulates one feature over any number of frames in memory that does not grow with
them: count, min and max exactly; mean and std exactly up to float64 rounding (Chan's pairwise update
of the mean and the sum of squared deviations); and, per dimension, a KLL quantile sketch (Apache
DataSketches ``kll_doubles_sketch``). A sketch's quantile ``q`` is a value whose rank in the data is
within ``rank_error()`` of ``q`` with 99% confidence: 0.28% at ``SKETCH_K`` = 1000, the k used for
features of up to ``SKETCH_BUDGET / SKETCH_K`` dimensions; wider features get a smaller k (at least
``MIN_K``) so that one feature holds at most ~``3 * SKETCH_BUDGET`` retained values. Until a sketch
holds more values than its k it is exact (quantiles are then the data's order statistics, numpy's
``method="inverted_cdf"``). Accumulators merge (`merge`): the per-episode ones merged give the
dataset's, as if every value had been added to one.

`StatsAccumulator` does this for any set of keys (numeric columns, sampled camera pixels). Images:
per-channel statistics on values scaled to [0, 1], computed on a subsample of frames (at most
``MAX_IMAGE_FRAMES`` per episode, pixels strided), shaped [3, 1, 1] as LeRobot stores them; their
count is the number of frames.

A dimension that holds NaN gets NaN statistics (min, max, mean, std and quantiles), written as null
in stats.json (the audit reports such values); infinities make mean and std non-finite likewise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from datasketches import kll_doubles_sketch

from vla.data.layout import QUANTILES

MAX_IMAGE_FRAMES = 16
PIXEL_STRIDE = 4
SKETCH_K = 1000
SKETCH_BUDGET = 64 * SKETCH_K  # k x dimensions of one feature: 64 dims at SKETCH_K
MIN_K = 8  # KLL's smallest k (rank error 30%)


def sketch_k(dims: int) -> int:
    """The KLL k used for a feature of `dims` dimensions (see module docstring)."""
    return max(MIN_K, min(SKETCH_K, SKETCH_BUDGET // max(1, dims)))


def rank_error(k: int) -> float:
    """KLL's normalized rank error of one quantile at parameter k (99% confidence), as the library states it."""
    return float(kll_doubles_sketch.get_normalized_rank_error(k, False))


class FeatureStats:
    """Streaming statistics of one feature: values [N, ...] flattened to [N, D] per frame."""

    def __init__(self, shape: tuple[int, ...] | None = None) -> None:
        self.shape = shape  # the shape of every stat (None: [D])
        self.dims: int | None = None
        self.k = SKETCH_K
        self.n = 0  # values added per dimension
        self.count = 0  # what stats.json calls count: frames (differs from n for sampled pixels)
        self._min = self._max = self._mean = self._m2 = self._nan = None
        self._sketches: list[kll_doubles_sketch] = []

    def _init(self, dims: int) -> None:
        self.dims = dims
        self.k = sketch_k(dims)
        self._min = np.full(dims, np.inf)
        self._max = np.full(dims, -np.inf)
        self._mean = np.zeros(dims)
        self._m2 = np.zeros(dims)
        self._nan = np.zeros(dims, bool)
        self._sketches = [kll_doubles_sketch(self.k) for _ in range(dims)]

    def _check_dims(self, dims: int, what: str) -> None:
        if self.dims is None:
            self._init(dims)
        elif dims != self.dims:
            raise ValueError(f"{what}: {dims} values per frame, earlier frames had {self.dims}")

    def add(self, values: np.ndarray, count: int | None = None) -> None:
        """Add frames [N, ...]; `count` (default N) is how many frames they stand for."""
        x = np.asarray(values, dtype=np.float64)
        x = x.reshape(len(x), -1) if x.ndim else x.reshape(1, 1)
        n = x.shape[0]
        self._check_dims(x.shape[1], "statistics")
        self.count += n if count is None else int(count)
        if n == 0:
            return
        nan = np.isnan(x).any(0)
        self._nan |= nan
        self._min = np.fmin(self._min, np.fmin.reduce(x, axis=0))  # fmin/fmax skip NaN (masked in result)
        self._max = np.fmax(self._max, np.fmax.reduce(x, axis=0))
        with np.errstate(invalid="ignore", over="ignore"):
            mean = x.mean(0)
            m2 = ((x - mean) ** 2).sum(0)
            self._combine(n, mean, m2)
        for d, sketch in enumerate(self._sketches):
            if not nan[d]:
                sketch.update(np.ascontiguousarray(x[:, d]))

    def _combine(self, n: int, mean: np.ndarray, m2: np.ndarray) -> None:
        total = self.n + n
        with np.errstate(invalid="ignore", over="ignore"):
            delta = mean - self._mean
            self._mean = self._mean + delta * (n / total)
            self._m2 = self._m2 + m2 + delta**2 * (self.n * n / total)
        self.n = total

    def merge(self, other: FeatureStats) -> None:
        """Fold `other` (same feature, e.g. one episode) into these statistics."""
        if other.dims is None:
            self.count += other.count
            return
        self._check_dims(other.dims, "merging statistics")
        self.count += other.count
        if other.n == 0:
            return
        self._min = np.fmin(self._min, other._min)
        self._max = np.fmax(self._max, other._max)
        self._nan |= other._nan
        self._combine(other.n, other._mean, other._m2)
        for mine, theirs in zip(self._sketches, other._sketches, strict=True):
            if not theirs.is_empty():
                mine.merge(theirs)

    def rank_error(self) -> float:
        """The stated rank error of these quantiles (0 while every sketch is still exact)."""
        if not any(s.is_estimation_mode() for s in self._sketches):
            return 0.0
        return rank_error(self.k)

    def result(self) -> dict[str, np.ndarray]:
        """LeRobot's stats of this feature: min, max, mean, std, count ([1]), q01..q99."""
        if self.dims is None or self.n == 0:
            raise ValueError("statistics of a feature with no values")
        nan = self._nan
        out = {
            "min": np.where(nan, np.nan, self._min),
            "max": np.where(nan, np.nan, self._max),
            "mean": np.where(nan, np.nan, self._mean),
            "std": np.where(nan, np.nan, np.sqrt(np.maximum(self._m2 / self.n, 0.0))),
        }
        ranks = list(QUANTILES.values())
        qs = np.full((len(ranks), self.dims), np.nan)
        for d, sketch in enumerate(self._sketches):
            if not nan[d] and not sketch.is_empty():
                qs[:, d] = sketch.get_quantiles(ranks, True)
        for key, q in zip(QUANTILES, qs, strict=True):
            out[key] = q
        if self.shape is not None:
            out = {k: v.reshape(self.shape) for k, v in out.items()}
        out["count"] = np.array([self.count], dtype=np.int64)
        return {k: out[k] for k in ("min", "max", "mean", "std", "count", *QUANTILES)}


class StatsAccumulator:
    """Streaming statistics of several features by key (any numeric column can be added)."""

    def __init__(self, keys: Iterable[str] | None = None) -> None:
        self.keys = tuple(keys) if keys is not None else None  # None: every key handed to add()
        self.features: dict[str, FeatureStats] = {}

    def feature(self, key: str, shape: tuple[int, ...] | None = None) -> FeatureStats:
        if key not in self.features:
            self.features[key] = FeatureStats(shape)
        return self.features[key]

    def add(self, frames: Mapping[str, np.ndarray]) -> None:
        """Add the frames [N, ...] of the selected keys present in `frames`."""
        for k, v in frames.items():
            if self.keys is None or k in self.keys:
                self.add_values(k, v)

    def add_values(self, key: str, values: np.ndarray) -> None:
        try:
            self.feature(key).add(values)
        except ValueError as e:
            raise ValueError(f"feature {key!r}: {e}") from e

    def add_images(self, key: str, frames: np.ndarray, count: int | None = None) -> None:
        """Add one episode's frames [T, H, W, 3] uint8 of a camera (subsampled, see module docstring).

        ``count``: the episode's frame count when ``frames`` is already its sample (a copied video)."""
        self.feature(key, (3, 1, 1)).add(image_sample(frames), count=len(frames) if count is None else count)

    def merge(self, other: StatsAccumulator) -> None:
        for k, f in other.features.items():
            mine = self.feature(k, f.shape)
            try:
                mine.merge(f)
            except ValueError as e:
                raise ValueError(f"feature {k!r}: {e}") from e

    def result(self) -> dict[str, dict[str, np.ndarray]]:
        return {k: f.result() for k, f in self.features.items() if f.n > 0}


def image_sample(frames: np.ndarray) -> np.ndarray:
    """Subsample an episode's frames [T, H, W, 3] uint8 into pixels [N, 3] in [0, 1]."""
    t = frames.shape[0]
    idx = np.linspace(0, t - 1, num=min(t, MAX_IMAGE_FRAMES)).round().astype(int)
    px = frames[idx, ::PIXEL_STRIDE, ::PIXEL_STRIDE, :].reshape(-1, 3)
    return px.astype(np.float32) / 255.0


def stats_to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """Stats as JSON-ready lists; a non-finite value (NaN or Inf in the data) becomes null, so the
    file stays valid JSON (the audit reports such values as findings)."""
    return {f: {k: finite_or_none(np.asarray(v).tolist()) for k, v in s.items()} for f, s in stats.items()}


def finite_or_none(x: Any) -> Any:
    """Replace every non-finite float in a nested list/dict by None."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, list):
        return [finite_or_none(v) for v in x]
    if isinstance(x, dict):
        return {k: finite_or_none(v) for k, v in x.items()}
    return x


def stats_from_json(d: dict[str, dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """Back to arrays; null (a non-finite value when written) reads as NaN."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for f, s in d.items():
        out[f] = {}
        for k, v in s.items():
            a = np.asarray(v)
            if a.dtype == object:
                a = np.asarray(v, dtype=np.float64)
            out[f][k] = a
    return out


def merge_episode_stats(per_episode: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, np.ndarray]]:
    """Aggregate per-episode stats written by others (LeRobot v2.1 episodes_stats.jsonl) into dataset stats.

    min/max/mean/std are exact (std via pooled second moments); quantiles, when present, are
    count-weighted averages of the per-episode quantiles (an approximation, documented as such: those
    files hold no sketches to merge).
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    feats = set().union(*(s.keys() for s in per_episode)) if per_episode else set()
    for f in sorted(feats):
        items = [{k: np.asarray(v, dtype=np.float64) for k, v in s[f].items()} for s in per_episode if f in s]
        counts = np.array([float(np.asarray(i["count"]).reshape(-1)[0]) for i in items])
        total = counts.sum()
        w = (counts / total).reshape((-1,) + (1,) * items[0]["mean"].ndim)
        means = np.stack([i["mean"] for i in items])
        mean = (w * means).sum(0)
        second = (w * (np.stack([i["std"] for i in items]) ** 2 + means**2)).sum(0)
        res = {
            "min": np.stack([i["min"] for i in items]).min(0),
            "max": np.stack([i["max"] for i in items]).max(0),
            "mean": mean,
            "std": np.sqrt(np.maximum(second - mean**2, 0.0)),
            "count": np.array([int(total)], dtype=np.int64),
        }
        for q in QUANTILES:
            if all(q in i for i in items):
                res[q] = (w * np.stack([i[q] for i in items])).sum(0)
        out[f] = res
    return out
