"""Limits on what a file may declare before anything is allocated for it.

A reader compares what a file declares (rows, values per row, image sizes, task indices, time spans,
record lengths) with caps derived from the file's real size and with configurable absolute caps, and
raises `DatasetError` naming the file, the field, the declared value and the limit before allocating.

The caps can be raised for genuinely large data through environment variables (``VLA_MAX_<NAME>``,
e.g. ``VLA_MAX_IMAGE_PIXELS=67108864``); `LIMITS` is read once at import.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from vla.data.errors import DatasetError


@dataclass(frozen=True)
class Limits:
    """Absolute caps, and how far a file may expand beyond its size on disk."""

    image_pixels: int = 1 << 24  # pixels of one decoded image (16.7 M: 4096 x 4096)
    episode_frames: int = 200_000  # frames of one episode, declared or built by resampling
    grid_per_sample: int = 1_000  # output frames per input sample when resampling (sparse spans)
    feature_values: int = 1 << 16  # values per frame of one low-dimensional feature
    tasks: int = 1_000_000  # entries of a tasks table
    expansion: int = 200  # decoded bytes per byte on disk (parquet, HDF5, ...)
    min_budget_bytes: int = 64 << 20  # decoded bytes always allowed, whatever the file size
    abs_seconds: float = 1e10  # |timestamp| in seconds (about 317 years)

    @classmethod
    def from_env(cls) -> Limits:
        out: dict[str, Any] = {}
        for f in fields(cls):
            raw = os.environ.get(f"VLA_MAX_{f.name.upper()}")
            if raw:
                try:
                    out[f.name] = type(getattr(cls, f.name))(float(raw))
                except ValueError:
                    continue
        return cls(**out)

    def budget(self, file_bytes: int) -> int:
        """Decoded bytes a file of ``file_bytes`` on disk may expand to."""
        return max(self.min_budget_bytes, self.expansion * int(file_bytes))


LIMITS = Limits.from_env()


class LimitError(DatasetError):
    """A file declares more (rows, values, pixels, bytes, frames) than the limits allow."""


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def check_count(value: Any, limit: int, where: str | Path | None, field: str, unit: str = "") -> int:
    """An integer count (rows, frames, values) between 0 and ``limit``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise DatasetError(where, f"{field}: expected an integer count, got {value!r}")
    if value < 0 or int(value) != value:
        raise DatasetError(where, f"{field}: expected an integer >= 0, got {value!r}")
    if value > limit:
        raise LimitError(where, f"{field}: declares {int(value):,}{unit}, more than the limit of {limit:,}{unit}")
    return int(value)


def check_bytes(declared: float, file_bytes: int, where: str | Path | None, field: str,
                limits: Limits = LIMITS) -> None:
    """Refuse a declared decoded size beyond the budget of a file of ``file_bytes`` on disk."""
    budget = limits.budget(file_bytes)
    if declared > budget:
        raise LimitError(where, f"{field}: declares {_mib(declared)} of data, the file holds {_mib(file_bytes)} "
                           f"on disk (limit {_mib(budget)}: {limits.expansion}x its size, at least "
                           f"{_mib(limits.min_budget_bytes)})")


def check_image(height: Any, width: Any, where: str | Path | None, field: str, limits: Limits = LIMITS) -> None:
    """Refuse an image whose declared size exceeds the pixel cap."""
    h, w = int(height), int(width)
    if h <= 0 or w <= 0:
        raise DatasetError(where, f"{field}: image of {w}x{h} pixels; expected a positive size")
    if h * w > limits.image_pixels:
        raise LimitError(where, f"{field}: image of {w}x{h} = {h * w:,} pixels, more than the limit of "
                           f"{limits.image_pixels:,} (VLA_MAX_IMAGE_PIXELS)")


def check_number(value: Any, where: str | Path | None, field: str, *, positive: bool = False,
                 at_most: float | None = None) -> float:
    """A finite real number (not a bool or string), optionally > 0 and <= ``at_most``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatasetError(where, f"{field}: expected a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise DatasetError(where, f"{field}: expected a finite number, got {value!r}")
    if positive and value <= 0:
        raise DatasetError(where, f"{field}: expected a number > 0, got {value!r}")
    if at_most is not None and abs(value) > at_most:
        raise DatasetError(where, f"{field}: {value!r} is beyond the limit of {at_most:g}")
    return float(value)


def check_grid(frames: float, samples: int, where: str | Path | None, field: str, limits: Limits = LIMITS) -> int:
    """Output grid length of a resampled episode: bounded absolutely and by the samples it is built from."""
    if not math.isfinite(frames):
        raise DatasetError(where, f"{field}: the time span gives a non-finite number of frames")
    cap = min(limits.episode_frames, max(1, samples) * limits.grid_per_sample)
    if frames > cap:
        raise LimitError(where, f"{field}: the time span needs an output grid of {int(frames):,} frames from "
                           f"{samples:,} samples; limit {cap:,} (at most {limits.episode_frames:,} per episode "
                           f"and {limits.grid_per_sample:,} per input sample)")
    return int(frames)
