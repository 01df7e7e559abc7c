"""Dataset: read LeRobotDataset v3.0 (ours and other tools') and v2.1 folders.

``Dataset.open(path)`` reads the metadata, checks that every file the metadata points to is
present and agrees with it (parquet row counts, video frame counts), and serves episodes:
low-dimensional columns as numpy arrays and camera frames decoded with PyAV.

v3.0 packs many episodes per file, so a missing data or video file is an error. v2.1 keeps one
file per episode and partial copies are common: episodes that the metadata lists but whose data
file is absent are reported in ``missing_episodes`` and not served.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vla.data import layout
from vla.data.errors import DatasetError
from vla.data.features import is_visual
from vla.data.provenance import Provenance
from vla.data.stats import merge_episode_stats, stats_from_json
from vla.data.tables import column_to_numpy, parquet_rows, read_parquet, read_tasks
from vla.data.video import decode_range, video_frame_count


@dataclass
class VideoRef:
    path: Path
    from_timestamp: float
    to_timestamp: float


@dataclass
class EpisodeInfo:
    """One episode: its index, length, tasks, provenance and where its data lives."""

    index: int
    length: int
    tasks: list[str]
    provenance: dict[str, Any] | None
    data_path: Path
    row_offset: int
    videos: dict[str, VideoRef] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _read_json(path: Path) -> Any:
    if not path.exists():
        raise DatasetError(path, "file is missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(path, f"invalid JSON: {e}") from e


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise DatasetError(path, "file is missing")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DatasetError(path, f"line {n}: invalid JSON: {e}") from e
    return rows


class Dataset:
    """A robot dataset on disk (LeRobot v3.0 or v2.1 layout)."""

    def __init__(self, root: Path, info: dict[str, Any], episodes: list[EpisodeInfo], tasks: list[str],
                 stats: dict[str, dict[str, np.ndarray]], missing: list[int]) -> None:
        self.root = root
        self.info = info
        self.episodes = episodes
        self.tasks = tasks
        self.stats = stats
        self.missing_episodes = missing
        self._by_index = {e.index: e for e in episodes}
        self._tables: OrderedDict[Path, pa.Table] = OrderedDict()

    # -- opening ---------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> Dataset:
        """Open a dataset folder; raises DatasetError naming the file and the problem."""
        root = Path(path)
        if not root.is_dir():
            raise DatasetError(root, "no dataset here (not a folder)")
        info_path = root / layout.INFO_PATH
        if not info_path.exists():
            raise DatasetError(info_path, "file is missing: not a LeRobot dataset (or an unfinished one)")
        info = _read_json(info_path)
        for key in ("codebase_version", "fps", "features"):
            if key not in info:
                raise DatasetError(info_path, f"field {key!r} is missing")
        version = str(info["codebase_version"])
        if version.startswith("v3"):
            ds = cls._open_v30(root, info)
        elif version.startswith("v2"):
            ds = cls._open_v21(root, info)
        else:
            raise DatasetError(info_path, f"field 'codebase_version' is {version!r}; expected v2.x or v3.x")
        if verify:
            ds.verify()
        return ds

    @classmethod
    def _open_v30(cls, root: Path, info: dict[str, Any]) -> Dataset:
        ep_files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        if not ep_files:
            raise DatasetError(root / "meta" / "episodes", "no episodes parquet files")
        rows: list[dict[str, Any]] = []
        for f in ep_files:
            rows.extend(read_parquet(f).to_pylist())
        rows.sort(key=lambda r: r["episode_index"])
        tasks = read_tasks(root / layout.TASKS_PATH)
        stats_path = root / layout.STATS_PATH
        stats = stats_from_json(_read_json(stats_path)) if stats_path.exists() else {}
        video_keys = [k for k, v in info["features"].items() if v.get("dtype") == "video"]
        data_tpl = info.get("data_path", layout.DATA_PATH)
        video_tpl = info.get("video_path") or layout.VIDEO_PATH
        file_start: dict[Path, int] = {}
        episodes, missing = [], []
        for r in rows:
            for key in ("episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index"):
                if key not in r:
                    raise DatasetError(ep_files[0], f"episodes table lacks column {key!r}")
            dpath = root / data_tpl.format(chunk_index=r["data/chunk_index"], file_index=r["data/file_index"])
            if not dpath.exists():
                raise DatasetError(dpath, f"data file of episode {r['episode_index']} is missing")
            file_start[dpath] = min(file_start.get(dpath, r["dataset_from_index"]), r["dataset_from_index"])
            videos = {}
            for k in video_keys:
                vpath = root / video_tpl.format(video_key=k, chunk_index=r[f"videos/{k}/chunk_index"],
                                                file_index=r[f"videos/{k}/file_index"])
                videos[k] = VideoRef(
                    vpath, float(r[f"videos/{k}/from_timestamp"]), float(r[f"videos/{k}/to_timestamp"])
                )
            prov = Provenance.from_columns(r)
            skip = ("stats/", "videos/", "provenance/", "data/", "meta/")
            extra = {k: v for k, v in r.items() if not k.startswith(skip)}
            episodes.append(EpisodeInfo(int(r["episode_index"]), int(r["length"]), list(r.get("tasks") or []),
                                        prov.to_dict() if prov else None, dpath, int(r["dataset_from_index"]),
                                        videos, extra))
        for e in episodes:
            e.row_offset -= file_start[e.data_path]
        return cls(root, info, episodes, tasks, stats, missing)

    @classmethod
    def _open_v21(cls, root: Path, info: dict[str, Any]) -> Dataset:
        rows = _read_jsonl(root / layout.V21_EPISODES_PATH)
        tasks_rows = _read_jsonl(root / layout.V21_TASKS_PATH)
        tasks: list[str] = [""] * (max((t["task_index"] for t in tasks_rows), default=-1) + 1)
        for t in tasks_rows:
            tasks[t["task_index"]] = t["task"]
        stats: dict[str, dict[str, np.ndarray]] = {}
        if (root / "meta" / "stats.json").exists():
            stats = stats_from_json(_read_json(root / "meta" / "stats.json"))
        elif (root / layout.V21_EPISODES_STATS_PATH).exists():
            stats = merge_episode_stats([r["stats"] for r in _read_jsonl(root / layout.V21_EPISODES_STATS_PATH)])
        chunks_size = int(info.get("chunks_size", layout.CHUNKS_SIZE))
        video_keys = [k for k, v in info["features"].items() if v.get("dtype") == "video"]
        fps = float(info["fps"])
        episodes, missing = [], []
        for r in sorted(rows, key=lambda r: r["episode_index"]):
            e = int(r["episode_index"])
            chunk = e // chunks_size
            dpath = root / info["data_path"].format(episode_chunk=chunk, episode_index=e)
            if not dpath.exists():
                missing.append(e)
                continue
            videos = {
                k: VideoRef(root / info["video_path"].format(episode_chunk=chunk, video_key=k, episode_index=e),
                            0.0, int(r["length"]) / fps)
                for k in video_keys
            }
            episodes.append(EpisodeInfo(e, int(r["length"]), list(r.get("tasks") or []), None, dpath, 0, videos))
        return cls(root, info, episodes, tasks, stats, missing)

    def verify(self) -> None:
        """Check files against the metadata: row counts per data file, frame counts per video file."""
        rows_by_file: dict[Path, int] = {}
        frames_by_video: dict[Path, int] = {}
        for e in self.episodes:
            rows_by_file[e.data_path] = rows_by_file.get(e.data_path, 0) + e.length
            for ref in e.videos.values():
                frames_by_video[ref.path] = frames_by_video.get(ref.path, 0) + e.length
        for path, expected in rows_by_file.items():
            got = parquet_rows(path)
            if got != expected:
                raise DatasetError(path, f"holds {got} rows but the episodes table says {expected}")
        for path, expected in frames_by_video.items():
            if not path.exists():
                raise DatasetError(path, "video file is missing")
            got = video_frame_count(path)
            if got != expected and not (self.missing_episodes and got > expected):
                raise DatasetError(path, f"video holds {got} frames but the episodes table says {expected}")

    # -- metadata ----------------------------------------------------------
    @property
    def version(self) -> str:
        return str(self.info["codebase_version"])

    @property
    def fps(self) -> float:
        return float(self.info["fps"])

    @property
    def robot_type(self) -> str | None:
        return self.info.get("robot_type")

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def camera_keys(self) -> list[str]:
        return [k for k, v in self.features.items() if is_visual(v)]

    @property
    def embodiment(self) -> dict[str, Any] | None:
        return (self.info.get("vla") or {}).get("embodiment")

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return sum(e.length for e in self.episodes)

    @property
    def episode_indices(self) -> list[int]:
        return [e.index for e in self.episodes]

    def episode(self, index: int) -> EpisodeInfo:
        if index not in self._by_index:
            where = "listed but missing on disk" if index in self.missing_episodes else "not in this dataset"
            raise DatasetError(self.root, f"episode {index} is {where}")
        return self._by_index[index]

    # -- data ----------------------------------------------------------------
    def _table(self, path: Path) -> pa.Table:
        t = self._tables.get(path)
        if t is None:
            t = read_parquet(path)
            self._tables[path] = t
            if len(self._tables) > 4:
                self._tables.popitem(last=False)
        else:
            self._tables.move_to_end(path)
        return t

    def episode_table(self, index: int) -> pa.Table:
        e = self.episode(index)
        t = self._table(e.data_path).slice(e.row_offset, e.length)
        if t.num_rows != e.length:
            raise DatasetError(e.data_path, f"episode {index}: expected {e.length} rows, found {t.num_rows}")
        if "episode_index" in t.column_names:
            got = set(t.column("episode_index").to_pylist())
            if got != {index}:
                raise DatasetError(e.data_path, f"rows for episode {index} hold episode_index {sorted(got)}")
        return t

    def episode_columns(self, index: int) -> dict[str, np.ndarray]:
        """Every non-camera column of an episode as numpy arrays ([T] or [T, D])."""
        e = self.episode(index)
        t = self.episode_table(index)
        cams = set(self.camera_keys)
        return {c: column_to_numpy(t.column(c), e.data_path, c) for c in t.column_names if c not in cams}

    def episode_images(self, index: int, key: str) -> np.ndarray:
        """All frames of one camera of an episode, decoded: uint8 [T, H, W, 3]."""
        e = self.episode(index)
        if key not in self.camera_keys:
            raise DatasetError(self.root, f"{key!r} is not a camera feature; cameras: {self.camera_keys}")
        if key in e.videos:
            ref = e.videos[key]
            return decode_range(ref.path, ref.from_timestamp, ref.to_timestamp, self.fps, expected=e.length)
        return _decode_images(self.episode_table(index).column(key), e.data_path, key)

    def frame(self, index: int, i: int) -> dict[str, Any]:
        """Frame ``i`` of episode ``index``: low-dim values and decoded images."""
        e = self.episode(index)
        if not 0 <= i < e.length:
            raise DatasetError(self.root, f"episode {index} has {e.length} frames; frame {i} requested")
        cols = self.episode_columns(index)
        out: dict[str, Any] = {k: v[i] for k, v in cols.items()}
        for key in self.camera_keys:
            if key in e.videos:
                ref = e.videos[key]
                t0 = ref.from_timestamp + i / self.fps
                out[key] = decode_range(ref.path, t0, t0 + 1 / self.fps, self.fps, expected=1)[0]
            else:
                col = self.episode_table(index).column(key).slice(i, 1)
                out[key] = _decode_images(col, e.data_path, key)[0]
        return out

    def iter_episodes(self):
        """Yield (EpisodeInfo, columns) for every present episode."""
        for e in self.episodes:
            yield e, self.episode_columns(e.index)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def __repr__(self) -> str:
        return (f"Dataset({str(self.root)!r}, {self.version}, episodes={self.num_episodes}, "
                f"frames={self.num_frames}, fps={self.fps:g})")


def _decode_images(col: pa.ChunkedArray | pa.Array, path: Path, key: str) -> np.ndarray:
    import io

    from PIL import Image

    out = []
    for item in col.to_pylist():
        data = item.get("bytes") if isinstance(item, dict) else item
        if data is None:
            raise DatasetError(path, f"column {key!r}: image without bytes (external image files are not supported)")
        out.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    return np.stack(out)
