"""LeRobot datasets (v2.1 and v3.0, and ours) as a source: read through the store's `Dataset.open`.

Every present episode is re-written with its tabular columns (the writer's bookkeeping columns
timestamp/frame_index/episode_index/index/task_index are regenerated; timestamps are kept), decoded
camera frames, and per-frame tasks. Episodes listed in the metadata but absent on disk are reported
and skipped. Statistics are recomputed by the writer from the data. Provenance stored by us is
carried over; for plain LeRobot datasets it must come from ``--provenance``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.formats.base import Reader
from vla.data.formats.episode import ConversionError, SourceEpisode, SourceInfo, Stream
from vla.data.layout import DEFAULT_FEATURES
from vla.data.limits import LIMITS

_DS_CACHE: dict[str, Any] = {}


def is_lerobot(path: Path) -> bool:
    return path.is_dir() and (path / "meta" / "info.json").is_file()


def _open(root: Path) -> Any:
    from vla.data.dataset import Dataset
    from vla.data.errors import DatasetError

    key = str(root)
    if key not in _DS_CACHE:
        try:
            _DS_CACHE[key] = Dataset.open(root)
        except DatasetError as e:
            raise ConversionError(f"{root}: not a readable LeRobot dataset: {e}") from e
    return _DS_CACHE[key]


class LeRobotReader(Reader):
    def __init__(self, root: Path, decode_images: bool = True) -> None:
        self.root = Path(root)
        self.decode_images = decode_images
        ds = _open(self.root)
        notes = []
        if ds.missing_episodes:
            miss = ds.missing_episodes
            notes.append(f"{self.root}: {len(miss)} episode(s) listed in meta but missing on disk, skipped "
                         f"(e.g. {miss[:5]})")
        user = {k: v for k, v in ds.features.items() if k not in DEFAULT_FEATURES}
        vla = ds.info.get("vla") or {}
        self.info = SourceInfo("lerobot", float(ds.fps), ds.robot_type, self.root.name,
                               ds.info.get("license"), user, notes=notes)
        self.info.extra = {"action_mode": vla.get("action_mode"), "normalization": vla.get("normalization"),
                           "embodiment": ds.embodiment}

    def tasks(self) -> Iterator[int]:
        yield from _open(self.root).episode_indices

    def describe(self, task: Any) -> str:
        return f"{self.root} episode {task}"

    def load(self, task: int) -> list[SourceEpisode]:
        ds = _open(self.root)
        e = ds.episode(task)
        cols = ds.episode_columns(task)
        n = e.length
        ts = cols.get("timestamp")
        ts = np.asarray(ts, np.float64).reshape(-1) if ts is not None else np.arange(n) / ds.fps
        bad = np.flatnonzero(~np.isfinite(ts) | (np.abs(ts) > LIMITS.abs_seconds))
        if bad.size:
            raise ConversionError(f"{e.data_path}: episode {task}, frame {int(bad[0])}: column 'timestamp' is "
                                  f"{ts[bad[0]]!r}; expected a finite time within +-{LIMITS.abs_seconds:g} s")
        names = {k: _flat_names(v.get("names")) for k, v in ds.features.items()}
        streams = {k: Stream(ts, v, "linear", names=names.get(k)) for k, v in cols.items()
                   if k not in DEFAULT_FEATURES}
        if self.decode_images:
            for key in ds.camera_keys:
                streams[key] = Stream(ts, ds.episode_images(task, key), "image")
        ti = cols.get("task_index")
        tasks = [ds.tasks[int(i)] for i in np.asarray(ti).reshape(-1)] if ti is not None else list(e.tasks)
        if len(set(tasks)) == 1:
            tasks = tasks[:1]
        prov = dict(e.provenance or {})
        upstream = prov.pop("source", None)
        prov.pop("created_at", None)
        source = {"format": f"lerobot_{ds.version}", "path": str(self.root), "dataset": self.root.name,
                  "episode_index": int(task), "sha256": None}
        if upstream:
            source["upstream"] = upstream
        return [SourceEpisode(streams, tasks, float(ds.fps), source, prov, streams_aligned=True)]


def _flat_names(names: Any) -> list[str] | None:
    """LeRobot names may be a list, a nested list (v2.1) or a dict of lists; flatten to a list."""
    if names is None:
        return None
    if isinstance(names, dict):
        return [str(n) for v in names.values() for n in (v if isinstance(v, list) else [v])]
    if isinstance(names, list) and names and isinstance(names[0], list):
        return [str(n) for sub in names for n in sub]
    return [str(n) for n in names] if isinstance(names, list) else None
