"""Dataset: read LeRobotDataset v3.0 (ours and other tools') and v2.1 folders.

``Dataset.open(path)`` reads the metadata, checks that every file the metadata points to is
present and agrees with it (parquet row counts, video frame counts), and serves episodes:
low-dimensional columns as numpy arrays and camera frames decoded with PyAV.

Partial copies are common (a clone without its large files, a download of a few episodes):

- v2.1 keeps one data file per episode: episodes that the metadata lists but whose data file is
  absent are reported in ``missing_episodes`` and not served. v3.0 packs many episodes per data file,
  so a missing data file is an error.
- A video file that is absent, empty (0 bytes) or a Git LFS pointer (v3.0 or v2.1) does not stop the
  dataset from opening: low-dimensional data, tasks, stats and provenance are served, the file is
  listed in ``missing_videos`` with the episodes and cameras it holds, and decoding one of those
  cameras raises a DatasetError naming the file.

When files are missing while look-alike files lie elsewhere (a ``video/`` folder where info.json's
``video_path`` says ``videos/``), opening fails with an error naming both (`vla.data.layout_check`).
``Dataset.open(path, paths={"video_path": ...})`` reads such a folder with corrected templates.
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
from vla.data.layout_check import check_layout, file_problem
from vla.data.limits import LIMITS, check_count, check_image
from vla.data.meta_checks import (
    V21_DATA_FIELDS,
    V21_VIDEO_FIELDS,
    V30_DATA_FIELDS,
    V30_VIDEO_FIELDS,
    check_info,
    check_int,
    check_seconds,
    dense_tasks,
    feature_width,
    image_hw,
)
from vla.data.provenance import Provenance
from vla.data.safe_paths import fill_template, template_fields
from vla.data.stats import merge_episode_stats, stats_from_json
from vla.data.tables import column_to_numpy, parquet_rows, read_parquet, read_tasks
from vla.data.video import decode_range, video_frame_count


@dataclass
class VideoRef:
    path: Path
    from_timestamp: float
    to_timestamp: float


@dataclass
class MissingVideo:
    """A video file the metadata names that cannot be read, and what it holds."""

    path: Path
    problem: str  # absent | empty (0 bytes) | a Git LFS pointer (...)
    cameras: list[str]
    episodes: list[int]

    def to_json(self, root: Path) -> dict[str, Any]:
        path, base = self.path.resolve(), root.resolve()
        rel = path.relative_to(base).as_posix() if path.is_relative_to(base) else str(self.path)
        return {"path": rel, "problem": self.problem, "cameras": self.cameras, "episodes": self.episodes}


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


PATH_OVERRIDES = ("data_path", "video_path")
MAX_META_BYTES = 256 << 20  # a JSON metadata file larger than this is refused before reading


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DatasetError(path, "file is missing")
    size = path.stat().st_size
    if size > MAX_META_BYTES:
        raise DatasetError(path, f"metadata file of {size:,} bytes, more than the limit of {MAX_META_BYTES:,}")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(path, f"cannot read as UTF-8 text: {e}") from e


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except (json.JSONDecodeError, RecursionError) as e:
        raise DatasetError(path, f"invalid JSON: {e}") from e


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(_read_text(path).splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as e:
                raise DatasetError(path, f"line {n}: invalid JSON: {e}") from e
            if not isinstance(row, dict):
                raise DatasetError(path, f"line {n}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def _stats(d: Any, path: Path) -> dict[str, dict[str, np.ndarray]]:
    """stats.json: feature -> stat -> numbers (null stands for a non-finite value)."""
    if not isinstance(d, dict) or not all(isinstance(v, dict) for v in d.values()):
        raise DatasetError(path, "expected an object of feature -> {stat: values}")
    try:
        return stats_from_json(d)
    except (TypeError, ValueError) as e:
        raise DatasetError(path, f"statistics are not numbers: {e}") from e


def _tasks_of(row: dict[str, Any], path: Path, what: str) -> list[str]:
    tasks = row.get("tasks") or []
    if isinstance(tasks, str):
        tasks = [tasks]
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        raise DatasetError(path, f"{what}: column 'tasks' is {tasks!r}; expected a list of strings")
    return list(tasks)


class Dataset:
    """A robot dataset on disk (LeRobot v3.0 or v2.1 layout)."""

    def __init__(self, root: Path, info: dict[str, Any], episodes: list[EpisodeInfo], tasks: list[str],
                 stats: dict[str, dict[str, np.ndarray]], missing: list[int],
                 missing_videos: list[MissingVideo] | None = None) -> None:
        self.root = root
        self.info = info
        self.episodes = episodes
        self.tasks = tasks
        self.stats = stats
        self.missing_episodes = missing
        self.missing_videos = missing_videos or []
        self._missing_video = {m.path: m for m in self.missing_videos}
        self._by_index = {e.index: e for e in episodes}
        self._tables: OrderedDict[Path, pa.Table] = OrderedDict()

    # -- opening ---------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, verify: bool = True, paths: dict[str, str] | None = None) -> Dataset:
        """Open a dataset folder; raises DatasetError naming the file and the problem.

        ``paths`` replaces info.json's ``data_path`` / ``video_path`` templates (for a folder whose
        files are not where its info.json says)."""
        root = Path(path)
        if not root.is_dir():
            raise DatasetError(root, "no dataset here (not a folder)")
        info_path = root / layout.INFO_PATH
        if not info_path.exists():
            raise DatasetError(info_path, "file is missing: not a LeRobot dataset (or an unfinished one)")
        info = check_info(_read_json(info_path), info_path)
        for key, tpl in (paths or {}).items():
            if key not in PATH_OVERRIDES:
                raise DatasetError(None, f"path override {key!r}: expected one of {', '.join(PATH_OVERRIDES)}")
            info = {**info, key: tpl}
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
        rows: list[tuple[Path, dict[str, Any]]] = []
        for f in ep_files:
            rows.extend((f, r) for r in read_parquet(f).to_pylist())
        for f, r in rows:
            check_int(r, "episode_index", f, "episodes table")
        rows.sort(key=lambda fr: fr[1]["episode_index"])
        tasks = read_tasks(root / layout.TASKS_PATH)
        stats_path = root / layout.STATS_PATH
        stats = _stats(_read_json(stats_path), stats_path) if stats_path.exists() else {}
        info_path = root / layout.INFO_PATH
        video_keys = [k for k, v in info["features"].items() if v.get("dtype") == "video"]
        data_tpl = info.get("data_path", layout.DATA_PATH)
        video_tpl = info.get("video_path") or layout.VIDEO_PATH
        template_fields(data_tpl, V30_DATA_FIELDS, info_path, "field 'data_path'")
        if video_keys:
            template_fields(video_tpl, V30_VIDEO_FIELDS, info_path, "field 'video_path'")
        file_start: dict[Path, int] = {}
        episodes, missing = [], []
        missing_data: dict[Path, int] = {}
        for f, r in rows:
            for key in ("episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index"):
                if key not in r:
                    raise DatasetError(f, f"episodes table lacks column {key!r}")
            what = f"episode {r['episode_index']}"
            length = check_int(r, "length", f, what, LIMITS.episode_frames)
            start = check_int(r, "dataset_from_index", f, what)
            cells = {"chunk_index": check_int(r, "data/chunk_index", f, what),
                     "file_index": check_int(r, "data/file_index", f, what)}
            dpath = fill_template(root, data_tpl, cells, info_path, "field 'data_path'")
            if not dpath.exists():
                missing_data.setdefault(dpath, int(r["episode_index"]))
            file_start[dpath] = min(file_start.get(dpath, start), start)
            videos = {}
            for k in video_keys:
                for col in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
                    if f"videos/{k}/{col}" not in r:
                        raise DatasetError(f, f"episodes table lacks column 'videos/{k}/{col}'")
                cells = {"video_key": k, "chunk_index": check_int(r, f"videos/{k}/chunk_index", f, what),
                         "file_index": check_int(r, f"videos/{k}/file_index", f, what)}
                vpath = fill_template(root, video_tpl, cells, info_path, "field 'video_path'")
                videos[k] = VideoRef(vpath, check_seconds(r, f"videos/{k}/from_timestamp", f, what),
                                     check_seconds(r, f"videos/{k}/to_timestamp", f, what))
            prov = Provenance.from_columns(r, f)
            skip = ("stats/", "videos/", "provenance/", "data/", "meta/")
            extra = {k: v for k, v in r.items() if not k.startswith(skip)}
            episodes.append(EpisodeInfo(int(r["episode_index"]), length, _tasks_of(r, f, what),
                                        prov.to_dict() if prov else None, dpath, start, videos, extra))
        if missing_data:
            check_layout(root, info_path, "data_path", data_tpl, list(missing_data), set(file_start), ".parquet")
            dpath, ep = next(iter(missing_data.items()))
            raise DatasetError(dpath, f"data file of episode {ep} is missing")
        for e in episodes:
            e.row_offset -= file_start[e.data_path]
        gone = _missing_videos(root, info_path, episodes, video_tpl, video_keys)
        return cls(root, info, episodes, tasks, stats, missing, gone)

    @classmethod
    def _open_v21(cls, root: Path, info: dict[str, Any]) -> Dataset:
        info_path = root / layout.INFO_PATH
        ep_path, tasks_path = root / layout.V21_EPISODES_PATH, root / layout.V21_TASKS_PATH
        rows = _read_jsonl(ep_path)
        tasks_rows = _read_jsonl(tasks_path)
        tasks = dense_tasks([(t.get("task_index"), t.get("task")) for t in tasks_rows], tasks_path)
        stats: dict[str, dict[str, np.ndarray]] = {}
        if (root / "meta" / "stats.json").exists():
            stats = _stats(_read_json(root / "meta" / "stats.json"), root / "meta" / "stats.json")
        elif (root / layout.V21_EPISODES_STATS_PATH).exists():
            es_path = root / layout.V21_EPISODES_STATS_PATH
            per = [r.get("stats") for r in _read_jsonl(es_path)]
            for s in per:
                _stats(s, es_path)
            try:
                stats = merge_episode_stats(per)
            except (TypeError, ValueError, KeyError, IndexError) as e:
                raise DatasetError(es_path, f"per-episode statistics do not agree in shape or keys: {e}") from e
        chunks_size = int(info.get("chunks_size", layout.CHUNKS_SIZE))
        video_keys = [k for k, v in info["features"].items() if v.get("dtype") == "video"]
        for key in ("data_path",) + (("video_path",) if video_keys else ()):
            if key not in info:
                raise DatasetError(info_path, f"field {key!r} is missing (a v2.1 dataset names its files by it)")
        template_fields(info["data_path"], V21_DATA_FIELDS, info_path, "field 'data_path'")
        if video_keys:
            template_fields(info["video_path"], V21_VIDEO_FIELDS, info_path, "field 'video_path'")
        fps = float(info["fps"])
        for r in rows:
            check_int(r, "episode_index", ep_path, "episodes.jsonl")
        episodes, missing = [], []
        listed: dict[Path, bool] = {}
        for r in sorted(rows, key=lambda r: r["episode_index"]):
            e = r["episode_index"]
            what = f"episode {e}"
            length = check_int(r, "length", ep_path, what, LIMITS.episode_frames)
            chunk = e // chunks_size
            dpath = fill_template(root, info["data_path"], {"episode_chunk": chunk, "episode_index": e}, info_path,
                                  "field 'data_path'")
            listed[dpath] = dpath.exists()
            if not dpath.exists():
                missing.append(e)
                continue
            videos = {
                k: VideoRef(fill_template(root, info["video_path"],
                                          {"episode_chunk": chunk, "video_key": k, "episode_index": e},
                                          info_path, "field 'video_path'"), 0.0, length / fps)
                for k in video_keys
            }
            episodes.append(EpisodeInfo(e, length, _tasks_of(r, ep_path, what), None, dpath, 0, videos))
        check_layout(root, info_path, "data_path", info["data_path"], [p for p, ok in listed.items() if not ok],
                     set(listed), ".parquet")
        gone = _missing_videos(root, info_path, episodes, info.get("video_path") or "", video_keys)
        return cls(root, info, episodes, tasks, stats, missing, gone)

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
            if path in self._missing_video:
                continue
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

    def missing_video(self, index: int, key: str) -> MissingVideo | None:
        """The unreadable video file holding camera ``key`` of episode ``index``, if any."""
        ref = self.episode(index).videos.get(key)
        return self._missing_video.get(ref.path) if ref is not None else None

    def _check_video(self, index: int, key: str) -> None:
        m = self.missing_video(index, key)
        if m is not None:
            raise DatasetError(m.path, f"video file is {m.problem}: camera {key!r} of episode {index} cannot be "
                               f"decoded (listed in missing_videos; low-dimensional data, tasks and stats are "
                               f"served)")

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
        out = {}
        for c in t.column_names:
            if c in cams:
                continue
            typ = t.column(c).type
            if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
                self._check_width(t.column(c), self.features.get(c), e.data_path, c)
            out[c] = column_to_numpy(t.column(c), e.data_path, c)
        ti = out.get("task_index")
        if ti is not None and len(ti):
            ti = np.asarray(ti).reshape(-1)
            if ti.dtype.kind not in "iu" or ti.min() < 0 or ti.max() >= len(self.tasks):
                bad = ti[0] if ti.dtype.kind not in "iu" else int(ti.min() if ti.min() < 0 else ti.max())
                raise DatasetError(e.data_path, f"episode {index}: column 'task_index' holds {bad!r}; the tasks "
                                   f"table has {len(self.tasks)} tasks (expected 0..{len(self.tasks) - 1})")
        return out

    @staticmethod
    def _check_width(col: pa.ChunkedArray, spec: dict[str, Any] | None, path: Path, name: str) -> None:
        """Every row of a list column holds as many values as its feature declares (before any copy)."""
        import pyarrow.compute as pc

        expected = feature_width(spec) if spec is not None else None
        for chunk in col.chunks:
            if len(chunk) == 0:
                continue
            lengths = pc.list_value_length(chunk)
            hi = pc.max(lengths).as_py()
            lo = pc.min(lengths).as_py()
            if expected is None:
                check_count(hi or 0, LIMITS.feature_values, path, f"column {name!r} (values per row)")
            elif hi != expected or lo != expected:
                raise DatasetError(path, f"column {name!r} holds {hi if hi != expected else lo:,} values in a row; "
                                   f"info.json declares shape {spec.get('shape')} ({expected} values)")

    def episode_images(self, index: int, key: str) -> np.ndarray:
        """All frames of one camera of an episode, decoded: uint8 [T, H, W, 3]."""
        e = self.episode(index)
        if key not in self.camera_keys:
            raise DatasetError(self.root, f"{key!r} is not a camera feature; cameras: {self.camera_keys}")
        if key in e.videos:
            self._check_video(index, key)
            ref = e.videos[key]
            return decode_range(ref.path, ref.from_timestamp, ref.to_timestamp, self.fps, expected=e.length,
                                shape=self.features[key]["shape"])
        return _decode_images(self.episode_table(index).column(key), e.data_path, key, self.features[key]["shape"])

    def frame(self, index: int, i: int) -> dict[str, Any]:
        """Frame ``i`` of episode ``index``: low-dim values and decoded images."""
        e = self.episode(index)
        if not 0 <= i < e.length:
            raise DatasetError(self.root, f"episode {index} has {e.length} frames; frame {i} requested")
        cols = self.episode_columns(index)
        out: dict[str, Any] = {k: v[i] for k, v in cols.items()}
        for key in self.camera_keys:
            if key in e.videos:
                self._check_video(index, key)
                ref = e.videos[key]
                t0 = ref.from_timestamp + i / self.fps
                out[key] = decode_range(ref.path, t0, t0 + 1 / self.fps, self.fps, expected=1,
                                        shape=self.features[key]["shape"])[0]
            else:
                col = self.episode_table(index).column(key).slice(i, 1)
                out[key] = _decode_images(col, e.data_path, key, self.features[key]["shape"])[0]
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


def _missing_videos(root: Path, info_path: Path, episodes: list[EpisodeInfo], template: str,
                    cameras: list[str]) -> list[MissingVideo]:
    """Video files the episodes name that are absent, empty or LFS pointers (in path order); raises
    when look-alike video files lie where info.json's video_path does not point (`check_layout`)."""
    holders: dict[Path, tuple[list[str], list[int]]] = {}
    for e in episodes:
        for key, ref in e.videos.items():
            cams, eps = holders.setdefault(ref.path, ([], []))
            if key not in cams:
                cams.append(key)
            if e.index not in eps:
                eps.append(e.index)
    out = []
    for path, (cams, eps) in holders.items():
        problem = file_problem(path)
        if problem is not None:
            out.append(MissingVideo(path, problem, cams, eps))
    if out:
        check_layout(root, info_path, "video_path", template, [m.path for m in out], set(holders), ".mp4", cameras)
    return out


def _decode_images(col: pa.ChunkedArray | pa.Array, path: Path, key: str, shape: list[int]) -> np.ndarray:
    """PNG/JPEG cells of an image column: each image's size (from its header) is checked against the
    feature's declared shape and the pixel cap before it is decoded."""
    import io

    from PIL import Image

    h, w = image_hw(shape)
    check_image(h, w, path, f"column {key!r}")
    out = np.empty((len(col), h, w, 3), np.uint8)
    for i, item in enumerate(col.to_pylist()):
        data = item.get("bytes") if isinstance(item, dict) else item
        if not isinstance(data, bytes):
            raise DatasetError(path, f"column {key!r}: image without bytes (external image files are not supported)")
        try:
            with Image.open(io.BytesIO(data)) as im:
                if im.size != (w, h):
                    check_image(im.size[1], im.size[0], path, f"column {key!r} row {i}")
                    raise DatasetError(path, f"column {key!r} row {i}: image of {im.size[0]}x{im.size[1]} pixels; "
                                       f"info.json declares {w}x{h}")
                out[i] = np.asarray(im.convert("RGB"))
        except DatasetError:
            raise
        except Exception as e:  # noqa: BLE001 - PIL raises several types for corrupt data
            raise DatasetError(path, f"column {key!r} row {i}: cannot decode image ({type(e).__name__}: {e})") from e
    return out
