"""Episode arrays the detectors work on, and the thin layer that pulls them from a Dataset.

Detectors see only numpy: timestamps, state, action, per-camera image thumbnails (grayscale,
small, float32: enough for motion energy and frozen-frame checks without holding full video in
memory), the episode's instructions and provenance. ``load_episodes`` reads them from
``Dataset.open(path)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla.data.limits import LimitError

THUMB = 32  # thumbnails are THUMB x THUMB grayscale


@dataclass
class EpisodeArrays:
    """What the audit knows about one episode. ``images`` holds thumbnails [N, THUMB, THUMB]."""

    index: int
    timestamps: np.ndarray
    state: np.ndarray | None = None
    action: np.ndarray | None = None
    images: dict[str, np.ndarray] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # expected modalities that are absent

    @property
    def length(self) -> int:
        return int(len(self.timestamps))


def thumbnails(frames: np.ndarray, size: int = THUMB) -> np.ndarray:
    """uint8 [N, H, W, 3] (or [N, H, W]) -> float32 grayscale [N, size, size] by block averaging."""
    x = np.asarray(frames)
    if x.ndim == 4:
        x = x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    else:
        x = x.astype(np.float32)
    n, h, w = x.shape
    if n == 0:
        return np.zeros((0, size, size), np.float32)
    ys = (np.arange(size + 1) * h) // size
    xs = (np.arange(size + 1) * w) // size
    if h >= size and w >= size:
        # block means via cumulative sums (exact for uneven blocks)
        c = np.zeros((n, h + 1, w + 1), np.float64)
        c[:, 1:, 1:] = x.cumsum(1).cumsum(2)
        s = c[:, ys[1:]][:, :, xs[1:]] - c[:, ys[:-1]][:, :, xs[1:]] - c[:, ys[1:]][:, :, xs[:-1]] \
            + c[:, ys[:-1]][:, :, xs[:-1]]
        area = np.outer(np.diff(ys), np.diff(xs))
        return (s / area).astype(np.float32)
    yi = np.minimum((np.arange(size) * h) // size, h - 1)
    xi = np.minimum((np.arange(size) * w) // size, w - 1)
    return x[:, yi][:, :, xi].astype(np.float32)


def _as_2d(v: Any) -> np.ndarray | None:
    if v is None:
        return None
    a = np.asarray(v)
    if a.dtype == object:
        a = np.stack([np.asarray(r, dtype=np.float64) for r in a]) if len(a) else np.zeros((0, 0))
    a = a.astype(np.float64)
    return a[:, None] if a.ndim == 1 else a


def episode_from_dataset(ds: Any, e: int, with_images: bool = True, cameras: list[str] | None = None) -> EpisodeArrays:
    """Read episode ``e`` of an open ``Dataset`` into EpisodeArrays (images as thumbnails; only the
    listed ``cameras`` when given)."""
    cols = ds.episode_columns(e)
    info = next((ep for ep in ds.episodes if ep.index == e), None)
    ts = np.asarray(cols.get("timestamp", np.arange(len(next(iter(cols.values())))) / ds.fps), np.float64)
    ts = ts.reshape(-1)
    missing = []
    state = _as_2d(cols.get("observation.state"))
    action = _as_2d(cols.get("action"))
    if "observation.state" in ds.features and state is None:
        missing.append("observation.state")
    if "action" in ds.features and action is None:
        missing.append("action")
    images: dict[str, np.ndarray] = {}
    if with_images:
        for key in ds.camera_keys:
            if cameras is not None and key not in cameras:
                continue
            try:
                frames = ds.episode_images(e, key)
            except LimitError:
                raise  # a stream declaring more than the limits allow is refused, not reported as missing
            except Exception:  # noqa: BLE001 - a missing/broken stream is a finding, not a crash
                frames = _decode_any_length(ds, e, key)
            if frames is None or len(frames) == 0:
                missing.append(key)
                continue
            images[key] = thumbnails(frames)
    tasks = list(getattr(info, "tasks", []) or []) if info is not None else []
    prov = dict(getattr(info, "provenance", None) or {}) if info is not None else {}
    return EpisodeArrays(e, ts, state, action, images, tasks, prov, missing)


def _decode_any_length(ds: Any, e: int, key: str) -> np.ndarray | None:
    """Decode a video whose frame count disagrees with the table (the store refuses to); None if
    it cannot be decoded at all."""
    try:
        from vla.data.video import decode_range

        ref = ds.episode(e).videos[key]
        return decode_range(ref.path, ref.from_timestamp, ref.to_timestamp, ds.fps, expected=None)
    except Exception:  # noqa: BLE001
        return None


def load_episodes(ds: Any, episodes: list[int] | None = None, with_images: bool = True,
                  cameras: list[str] | None = None) -> Iterator[EpisodeArrays]:
    """Yield EpisodeArrays for the dataset's episodes present on disk (or the listed ones), with
    all cameras or only the listed ones."""
    missing = set(getattr(ds, "missing_episodes", []) or [])
    idx = episodes if episodes is not None else [ep.index for ep in ds.episodes if ep.index not in missing]
    for e in idx:
        yield episode_from_dataset(ds, e, with_images, cameras)


def group_key(ep: EpisodeArrays) -> str:
    """Which episodes are "the same task" for reference values: the provenance source path
    (e.g. metaworld/door-open-v3), else the collector (e.g. a scripted policy), else the instruction."""
    src = ep.provenance.get("source") if isinstance(ep.provenance, dict) else None
    if isinstance(src, dict) and src.get("path"):
        return f"source:{src['path']}"
    if ep.provenance.get("collector_id") and ep.provenance.get("collection_method") == "scripted":
        return f"collector:{ep.provenance['collector_id']}"
    return f"task:{ep.tasks[0] if ep.tasks else ''}"
