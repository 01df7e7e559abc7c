"""Small helpers shared by detectors: runs of True values, robust statistics."""

from __future__ import annotations

import numpy as np


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index ranges where ``mask`` is True."""
    m = np.asarray(mask, bool).astype(np.int8)
    if m.size == 0:
        return []
    d = np.diff(np.concatenate([[0], m, [0]]))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def merge_ranges(ranges: list[tuple[int, int]], slack: int = 0) -> list[tuple[int, int]]:
    """Merge overlapping (or within ``slack``) [start, end) ranges."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + slack:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def mad(x: np.ndarray) -> float:
    """Median absolute deviation scaled to a normal sigma (0 for empty input)."""
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def robust_upper(values: list[float] | np.ndarray, k: float, floor: float, min_n: int = 5) -> float:
    """Threshold ``median + k * MAD`` over episodes, never below ``floor`` (``floor`` alone when few)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size < min_n:
        return floor
    return max(floor, float(np.median(v) + k * mad(v)))


def finite_rows(*arrays: np.ndarray | None) -> np.ndarray:
    """Boolean mask of rows finite in every given 2-D array."""
    n = next(len(a) for a in arrays if a is not None)
    ok = np.ones(n, bool)
    for a in arrays:
        if a is not None:
            ok &= np.isfinite(a).all(axis=1)
    return ok
