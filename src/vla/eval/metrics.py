"""Success-rate statistics: Wilson score intervals and latency percentiles."""

from __future__ import annotations

import math

import numpy as np


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (sensible at 0/n and n/n)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def percentile_ms(values_s: list[float], q: float) -> float | None:
    """Percentile ``q`` (0-100) of durations given in seconds, in milliseconds."""
    if not values_s:
        return None
    return float(np.percentile(np.asarray(values_s) * 1000.0, q))
