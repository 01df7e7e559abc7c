"""Feature statistics (min, max, mean, std, count, q01..q99) as in LeRobot's meta/stats.json.

Low-dimensional features: exact statistics over every frame. Images: per-channel statistics on
values scaled to [0, 1], computed on a subsample of frames (at most ``MAX_IMAGE_FRAMES`` per
episode, pixels strided), shaped [3, 1, 1] as LeRobot stores them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vla.data.layout import QUANTILES

MAX_IMAGE_FRAMES = 16
PIXEL_STRIDE = 4


def array_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics over axis 0 of a [N, ...] array."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    out = {
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "count": np.array([x.shape[0]], dtype=np.int64),
    }
    qs = np.quantile(x, list(QUANTILES.values()), axis=0)
    for key, q in zip(QUANTILES, qs, strict=True):
        out[key] = q
    return out


def image_sample(frames: np.ndarray) -> np.ndarray:
    """Subsample an episode's frames [T, H, W, 3] uint8 into pixels [N, 3] in [0, 1]."""
    t = frames.shape[0]
    idx = np.linspace(0, t - 1, num=min(t, MAX_IMAGE_FRAMES)).round().astype(int)
    px = frames[idx, ::PIXEL_STRIDE, ::PIXEL_STRIDE, :].reshape(-1, 3)
    return px.astype(np.float32) / 255.0


def image_stats(pixels: np.ndarray, frame_count: int) -> dict[str, np.ndarray]:
    """Per-channel stats of sampled pixels, reshaped to [3, 1, 1]; count is the number of frames."""
    s = array_stats(pixels)
    out = {k: v.reshape(3, 1, 1) for k, v in s.items() if k != "count"}
    out["count"] = np.array([frame_count], dtype=np.int64)
    return out


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
    """Aggregate per-episode stats (LeRobot v2.1 episodes_stats.jsonl) into dataset stats.

    min/max/mean/std are exact (std via pooled second moments); quantiles, when present, are
    count-weighted averages of the per-episode quantiles (an approximation, documented as such).
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
