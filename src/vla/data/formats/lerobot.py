"""LeRobot datasets (v2.1 and v3.0, and ours) as a source: read through the store's `Dataset.open`.

Every present episode is re-written with its tabular columns (the writer's bookkeeping columns
timestamp/frame_index/episode_index/index/task_index are regenerated; timestamps are kept), its
camera frames, and per-frame tasks. Episodes listed in the metadata but absent on disk are reported
and skipped. Statistics are recomputed by the writer from the data. Provenance stored by us is
carried over; for plain LeRobot datasets it must come from ``--provenance``.

Videos are stream-copied when `convert` asks for it (`enable_stream_copy`: no resampling, no offsets,
video output): episodes then carry `VideoSegment` references instead of decoded frames, and only the
frames the image statistics sample are decoded.

Missing video files (absent, empty, Git LFS pointers: `Dataset.missing_videos`) stop a conversion
with an error naming them, unless ``skip_missing_videos``: then every camera with a missing file is
left out of the output (all episodes are kept, with their low-dimensional data), which is said in the
report's notes, in each episode's provenance (``source.dropped_features``) and in info.json
(``vla.source.dropped_features``).

The optional mapping (``--mapping``, YAML or JSON) renames features, as the MCAP mapping maps topics
onto them, and corrects the path templates of info.json::

    features:                      # new name: feature of the source (or {key: name})
      action: actions
      observation.state: state
      observation.images.image: image
    video_path: "video/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"   # optional
    data_path: "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"              # optional

Feature names that break LeRobot's conventions (``actions``, ``state``, a camera outside
``observation.images.``) stop a conversion with an error naming the expected and the found key
(`vla.data.conventions`), unless the mapping renames them.
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

MAPPING_KEYS = ("features", "video_path", "data_path")
_DS_CACHE: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}


def is_lerobot(path: Path) -> bool:
    return path.is_dir() and (path / "meta" / "info.json").is_file()


def _open(root: Path, paths: dict[str, str]) -> Any:
    from vla.data.dataset import Dataset
    from vla.data.errors import DatasetError

    key = (str(root), tuple(sorted(paths.items())))
    if key not in _DS_CACHE:
        try:
            _DS_CACHE[key] = Dataset.open(root, paths=paths)
        except DatasetError as e:
            raise ConversionError(f"{root}: not a readable LeRobot dataset: {e}") from e
    return _DS_CACHE[key]


def mapping_paths(mapping: dict[str, Any]) -> dict[str, str]:
    """Check a LeRobot mapping's top level; return its path templates (data_path, video_path)."""
    unknown = [k for k in mapping if k not in MAPPING_KEYS]
    if unknown:
        raise ConversionError(f"mapping: unknown key(s) {unknown} for a LeRobot source; expected "
                              f"{', '.join(MAPPING_KEYS)}")
    paths = {}
    for k in ("data_path", "video_path"):
        if k in mapping:
            if not isinstance(mapping[k], str) or not mapping[k]:
                raise ConversionError(f"mapping: {k}: expected a path template string, got {mapping[k]!r}")
            paths[k] = mapping[k]
    return paths


def mapping_renames(mapping: dict[str, Any], features: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Source feature -> new name, from the mapping's ``features`` (new name: source feature)."""
    from vla.data.features import is_visual
    from vla.data.safe_paths import check_name

    feats = mapping.get("features")
    if feats is None:
        return {}
    if not isinstance(feats, dict):
        raise ConversionError("mapping: features: expected an object of new name -> source feature, e.g. "
                              "{action: actions, observation.images.image: image}")
    out: dict[str, str] = {}
    for new, spec in feats.items():
        check_name(new, "mapping: feature name", "mapping")
        src = spec.get("key") if isinstance(spec, dict) else spec
        if not isinstance(src, str) or (isinstance(spec, dict) and set(spec) != {"key"}):
            raise ConversionError(f"mapping: features.{new}: expected the name of a source feature or {{key: name}}, "
                                  f"got {spec!r}")
        if src not in features or src in DEFAULT_FEATURES:
            have = [k for k in features if k not in DEFAULT_FEATURES]
            raise ConversionError(f"mapping: features.{new}: the source has no feature {src!r} (features: {have})")
        if new in DEFAULT_FEATURES:
            raise ConversionError(f"mapping: features.{new}: {new!r} is a column the writer makes itself")
        if src in out:
            raise ConversionError(f"mapping: features.{new}: source feature {src!r} is already mapped to {out[src]!r}")
        if new.startswith("observation.images.") != is_visual(features[src]):
            kind = "a camera" if is_visual(features[src]) else f"not a camera (dtype {features[src].get('dtype')})"
            raise ConversionError(f"mapping: features.{new}: source {src!r} is {kind}; cameras are named "
                                  "observation.images.<name>, and only cameras")
        out[src] = new
    kept = {k for k in features if k not in out}
    clash = sorted(set(out.values()) & kept)
    if clash:
        raise ConversionError(f"mapping: features: {clash} would replace feature(s) of the source of the same name; "
                              "rename those too")
    return out


class LeRobotReader(Reader):
    def __init__(self, root: Path, decode_images: bool = True, mapping: dict[str, Any] | None = None,
                 skip_missing_videos: bool = False) -> None:
        from vla.data.conventions import mapping_hint, nonstandard_features

        self.root = Path(root)
        self.decode_images = decode_images
        mapping = mapping or {}
        self.paths = mapping_paths(mapping)
        ds = _open(self.root, self.paths)
        self.rename = mapping_renames(mapping, ds.features)
        notes = []
        if ds.missing_episodes:
            miss = ds.missing_episodes
            notes.append(f"{self.root}: {len(miss)} episode(s) listed in meta but missing on disk, skipped "
                         f"(e.g. {miss[:5]})")
        self.dropped: list[str] = []
        if ds.missing_videos:
            files = "; ".join(f"{m.path} ({m.problem}; cameras {m.cameras}; episodes {_short(m.episodes)})"
                              for m in ds.missing_videos[:5])
            more = f"; and {len(ds.missing_videos) - 5} more" if len(ds.missing_videos) > 5 else ""
            cams = sorted({c for m in ds.missing_videos for c in m.cameras})
            if not skip_missing_videos:
                raise ConversionError(
                    f"{self.root}: {len(ds.missing_videos)} video file(s) cannot be read: {files}{more}. Convert with "
                    f"--skip-missing-videos to leave out camera(s) {cams} (every episode is kept with its "
                    "low-dimensional data, tasks and provenance)")
            self.dropped = cams
            notes.append(f"--skip-missing-videos: camera(s) {cams} left out, their video file(s) cannot be read: "
                         f"{files}{more}")
        elif skip_missing_videos:
            notes.append("--skip-missing-videos: every video file is present; nothing skipped")
        user = {self.rename.get(k, k): v for k, v in ds.features.items()
                if k not in DEFAULT_FEATURES and k not in self.dropped}
        findings = [f for f in nonstandard_features(user) if f.found is not None]
        if findings:
            info_path = self.root / "meta" / "info.json"
            raise ConversionError(
                f"{info_path}: feature names differ from LeRobot's: " + "; ".join(f.describe() for f in findings)
                + f". Convert with --mapping FILE holding {mapping_hint(findings)} (new name: name in the dataset)")
        if self.rename:
            notes.append("mapping: features renamed " + ", ".join(f"{a} -> {b}" for a, b in self.rename.items()))
        vla = ds.info.get("vla") or {}
        self.info = SourceInfo("lerobot", float(ds.fps), ds.robot_type, self.root.name,
                               ds.info.get("license"), user, notes=notes)
        self.info.extra = {"action_mode": vla.get("action_mode"), "normalization": vla.get("normalization"),
                           "embodiment": ds.embodiment, "renamed_features": dict(self.rename),
                           "dropped_features": list(self.dropped)}
        self.copy_videos: list[str] = []

    def enable_stream_copy(self) -> tuple[list[str], str]:
        """Carry the video cameras as `VideoSegment` references from now on. Returns (cameras to copy,
        why the others are not): cameras stored as images in the parquet files are decoded as before."""
        ds = _open(self.root, self.paths)
        self.copy_videos = [k for k in ds.camera_keys
                            if ds.features[k].get("dtype") == "video" and k not in self.dropped]
        others = [k for k in ds.camera_keys if k not in self.copy_videos and k not in self.dropped]
        return [self.rename.get(k, k) for k in self.copy_videos], (
            f"camera(s) {others} are images in the data files, not videos" if others else "")

    def disable_stream_copy(self) -> None:
        self.copy_videos = []

    def tasks(self) -> Iterator[int]:
        yield from _open(self.root, self.paths).episode_indices

    def describe(self, task: Any) -> str:
        return f"{self.root} episode {task}"

    def load(self, task: int) -> list[SourceEpisode]:
        from vla.data.stats import MAX_IMAGE_FRAMES
        from vla.data.video import VideoSegment, decode_frames, sample_indices

        ds = _open(self.root, self.paths)
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
        streams = {self.rename.get(k, k): Stream(ts, v, "linear", names=names.get(k)) for k, v in cols.items()
                   if k not in DEFAULT_FEATURES}
        videos = {}
        if self.decode_images:
            for key in ds.camera_keys:
                if key in self.dropped:
                    continue
                if key in self.copy_videos:
                    ref = e.videos[key]
                    shape = ds.features[key]["shape"]
                    sample = decode_frames(ref.path, ref.from_timestamp, ds.fps, n,
                                           sample_indices(n, MAX_IMAGE_FRAMES), shape)
                    videos[self.rename.get(key, key)] = VideoSegment(ref.path, ref.from_timestamp, ref.to_timestamp,
                                                                     n, sample)
                else:
                    streams[self.rename.get(key, key)] = Stream(ts, ds.episode_images(task, key), "image")
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
        if self.rename:
            source["renamed_features"] = dict(self.rename)
        if self.dropped:
            source["dropped_features"] = list(self.dropped)
        return [SourceEpisode(streams, tasks, float(ds.fps), source, prov, streams_aligned=True, videos=videos)]


def _short(items: list[int], n: int = 8) -> str:
    return ", ".join(map(str, items[:n])) + (f" ... ({len(items)} in all)" if len(items) > n else "")


def _flat_names(names: Any) -> list[str] | None:
    """LeRobot names may be a list, a nested list (v2.1) or a dict of lists; flatten to a list."""
    if names is None:
        return None
    if isinstance(names, dict):
        return [str(n) for v in names.values() for n in (v if isinstance(v, list) else [v])]
    if isinstance(names, list) and names and isinstance(names[0], list):
        return [str(n) for sub in names for n in sub]
    return [str(n) for n in names] if isinstance(names, list) else None
