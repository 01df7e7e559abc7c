"""DatasetWriter: builds a LeRobotDataset v3.0 folder with provenance, atomically.

The dataset is built in a hidden temporary folder beside the target and renamed into place by
``finalize()``; a writer that is killed or raises leaves nothing that opens as a dataset.
Frames are buffered per episode; ``save_episode`` appends the episode to the current data parquet
file and to one MP4 per camera (many episodes per file). Small episodes are gathered into row groups of
about ``ROW_GROUP_BYTES`` (a row group per episode would grow the open file's footer with every
episode); the episodes table is spooled to disk (`vla.data.episode_rows`) and the statistics stream
(`vla.data.stats`), so the writer's memory does not grow with the number of episodes. Cameras named
in ``copied_videos`` are not passed per frame: ``save_episode(..., videos={key: VideoSegment})``
copies their packets from a source file instead of encoding (`vla.data.video.VideoCopier`).
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla.data import layout
from vla.data.atomic import write_json_atomic
from vla.data.embodiment import EmbodimentSpec
from vla.data.episode_rows import EpisodeRows
from vla.data.errors import DatasetError
from vla.data.features import check_frame, is_visual, user_features, validate_features
from vla.data.limits import LIMITS, check_number
from vla.data.provenance import Provenance
from vla.data.safe_paths import fill_template
from vla.data.stats import StatsAccumulator, stats_to_json
from vla.data.tables import column_from_values, tasks_table
from vla.data.video import CODEC, GOP, PIX_FMT, StreamCopyError, VideoAppender, VideoCopier, VideoSegment
from vla.data.vla_block import embed_vla_block

TMP_MARK = ".vla-tmp-"
ROW_GROUP_BYTES = 256_000  # Arrow bytes of buffered episodes written as one row group
VIDEO_PRESET = "veryfast"  # the x264 preset VideoAppender encodes with (checked by a test)


def _next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    file += 1
    if file >= chunks_size:
        return chunk + 1, 0
    return chunk, file


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_dirs(root: Path) -> list[Path]:
    """Delete temporary build folders of ``root`` left by writers whose process is gone."""
    removed = []
    for p in root.parent.glob(f".{root.name}{TMP_MARK}*"):
        try:
            pid = int(p.name.rsplit(TMP_MARK, 1)[1].split("-")[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


class DatasetWriter:
    """Write episodes into a new LeRobot v3.0 dataset at ``root`` (see docs/contracts.md)."""

    def __init__(
        self,
        root: str | Path,
        *,
        fps: float,
        features: dict[str, dict[str, Any]],
        robot_type: str,
        embodiment: EmbodimentSpec | dict[str, Any] | None = None,
        use_videos: bool = True,
        overwrite: bool = False,
        chunks_size: int = layout.CHUNKS_SIZE,
        data_file_size_mb: float = layout.DATA_FILES_SIZE_MB,
        video_file_size_mb: float = layout.VIDEO_FILES_SIZE_MB,
        crf: int = 18,
        video_pix_fmt: str = PIX_FMT,
        extra_info: dict[str, Any] | None = None,
        copied_videos: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.root = Path(root).absolute()
        check_number(fps, self.root, "fps", positive=True)
        if self.root.exists() and not overwrite:
            raise DatasetError(self.root, "target already exists (pass overwrite=True to replace it)")
        self.fps = float(fps)
        self.robot_type = robot_type
        self.embodiment = EmbodimentSpec.from_dict(embodiment).validate() if embodiment is not None else None
        self.overwrite = overwrite
        self.chunks_size = chunks_size
        self.data_file_bytes = int(data_file_size_mb * 1e6)
        self.video_file_bytes = int(video_file_size_mb * 1e6)
        self.crf = crf
        self.pix_fmt = video_pix_fmt
        self.extra_info = extra_info or {}
        feats = validate_features(features)
        if not use_videos:
            feats = {k: ({**v, "dtype": "image"} if v["dtype"] == "video" else v) for k, v in feats.items()}
        self.features = feats
        self.camera_keys = [k for k, v in user_features(feats).items() if is_visual(v)]
        self.video_keys = [k for k in self.camera_keys if feats[k]["dtype"] == "video"]
        self.image_keys = [k for k in self.camera_keys if feats[k]["dtype"] == "image"]
        self.numeric_keys = [k for k, v in user_features(feats).items() if not is_visual(v)]
        self.copied_keys = [k for k in self.video_keys if k in copied_videos]
        if len(self.copied_keys) != len(set(copied_videos)):
            raise DatasetError(self.root, f"copied_videos {list(copied_videos)}: every one must be a video feature "
                               f"(video features: {self.video_keys})")
        self._frame_features = {k: v for k, v in feats.items() if k not in self.copied_keys}
        self._video_info: dict[str, dict[str, Any]] = {}

        self.root.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_dirs(self.root)
        self.tmp = self.root.parent / f".{self.root.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        self._closed = False

        self.tasks: list[str] = []
        self._task_index: dict[str, int] = {}
        self.episodes = EpisodeRows(self.tmp / ".episodes-parts")
        self.total_frames = 0
        self._buffer: list[dict[str, Any]] = []
        self._buffer_tasks: list[int] = []
        self._buffer_ts: list[float] = []
        # dataset stats, streamed: each episode's accumulator is merged in (memory independent of episodes)
        self._stats = StatsAccumulator()
        # open files
        self._data_pos = (0, 0)
        self._data_writer: pq.ParquetWriter | None = None
        self._data_path: Path | None = None
        self._pending: list[pa.Table] = []  # episodes not yet written to the data file
        self._pending_bytes = 0
        self._video_pos = {k: (0, 0) for k in self.video_keys}
        self._videos: dict[str, VideoAppender] = {}

    # -- context manager -------------------------------------------------
    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalize()
        else:
            self.abort()

    # -- frames ----------------------------------------------------------
    @property
    def episode_buffer_size(self) -> int:
        return len(self._buffer)

    def add_frame(self, frame: dict[str, Any], task: str, timestamp: float | None = None) -> None:
        """Buffer one frame of the current episode; ``task`` is its natural-language instruction."""
        self._check_open()
        if not isinstance(task, str) or not task.strip():
            raise DatasetError(self.root, f"frame {len(self._buffer)} of episode {len(self.episodes)}: task must be "
                               "a non-empty string")
        where = f"episode {len(self.episodes)}, frame {len(self._buffer)}"
        self._buffer.append(check_frame(frame, self._frame_features, where))
        if task not in self._task_index:
            self._task_index[task] = len(self.tasks)
            self.tasks.append(task)
        self._buffer_tasks.append(self._task_index[task])
        if timestamp is not None:
            timestamp = check_number(timestamp, self.root, f"{where}: timestamp", at_most=LIMITS.abs_seconds)
        self._buffer_ts.append(len(self._buffer_ts) / self.fps if timestamp is None else timestamp)

    def clear_episode(self) -> None:
        """Drop the frames buffered for the current episode (e.g. a failed demonstration)."""
        self._buffer, self._buffer_tasks, self._buffer_ts = [], [], []

    def save_episode(self, provenance: Provenance | dict[str, Any],
                     videos: dict[str, VideoSegment] | None = None) -> int:
        """Write the buffered episode with its provenance; returns its episode index.

        ``videos``: a `VideoSegment` (of as many frames as the episode) for every copied camera."""
        self._check_open()
        prov = Provenance.from_dict(provenance).validate()
        n = len(self._buffer)
        if n == 0:
            raise DatasetError(self.root, f"episode {len(self.episodes)}: no frames added before save_episode")
        ep = len(self.episodes)
        videos = videos or {}
        for k in self.copied_keys:
            if k not in videos or videos[k].frames != n:
                got = f"{videos[k].frames} frames" if k in videos else "none"
                raise DatasetError(self.root, f"episode {ep}: copied camera {k!r} needs a video segment of {n} "
                                   f"frames, got {got}")
        start = self.total_frames
        row: dict[str, Any] = {
            "episode_index": ep,
            "tasks": [self.tasks[i] for i in dict.fromkeys(self._buffer_tasks)],
            "length": n,
        }
        table_cols: dict[str, pa.Array] = {}
        ep_stats = StatsAccumulator()
        for k in self.numeric_keys:
            spec = self.features[k]
            values = np.stack([f[k] for f in self._buffer]) if spec["dtype"] != "string" else None
            if values is None:
                table_cols[k] = pa.array([f[k] for f in self._buffer], type=pa.string())
                continue
            table_cols[k] = column_from_values(values, spec["dtype"], spec["shape"])
            ep_stats.add_values(k, values.reshape(n, -1))
        for k in self.image_keys:
            table_cols[k] = pa.array(
                [{"bytes": _png_bytes(f[k]), "path": f"frame_{start + i:09d}.png"} for i, f in enumerate(self._buffer)],
                type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
            )
        ts = np.asarray(self._buffer_ts, dtype=np.float32)
        table_cols["timestamp"] = pa.array(ts, type=pa.float32())
        table_cols["frame_index"] = pa.array(np.arange(n), type=pa.int64())
        table_cols["episode_index"] = pa.array(np.full(n, ep), type=pa.int64())
        table_cols["index"] = pa.array(np.arange(start, start + n), type=pa.int64())
        table_cols["task_index"] = pa.array(np.asarray(self._buffer_tasks), type=pa.int64())
        for k in layout.DEFAULT_FEATURES:  # LeRobot keeps stats of the index columns too
            ep_stats.add_values(k, table_cols[k].to_numpy().astype(np.float64).reshape(n, 1))
        ordered = [k for k in self.features if k in table_cols]
        self._write_data(pa.table({k: table_cols[k] for k in ordered}), row)
        row["dataset_from_index"] = start
        row["dataset_to_index"] = start + n
        for k in self.video_keys:
            if k in self.copied_keys:
                self._copy_video(k, videos[k], row)
                # the frames the statistics sample, decoded from the source; they stand for all n frames
                ep_stats.add_images(k, videos[k].sample, count=n)
            else:
                frames = np.stack([f[k] for f in self._buffer])
                self._write_video(k, frames, row)
                ep_stats.add_images(k, frames)
        for k in self.image_keys:
            ep_stats.add_images(k, np.stack([f[k] for f in self._buffer]))
        row["meta/episodes/chunk_index"] = 0
        row["meta/episodes/file_index"] = 0
        for feat, s in ep_stats.result().items():
            for stat, v in s.items():
                row[f"stats/{feat}/{stat}"] = np.asarray(v).reshape(-1).tolist()
        row.update(prov.to_columns())
        self._stats.merge(ep_stats)
        self.episodes.append(row)
        self.total_frames += n
        self.clear_episode()
        return ep

    # -- files -----------------------------------------------------------
    def _write_data(self, table: pa.Table, row: dict[str, Any]) -> None:
        if self._data_path is not None and self._data_size() >= self.data_file_bytes:
            self._close_data()
            self._data_pos = _next_file(*self._data_pos, self.chunks_size)
        if self._data_path is None:
            c, f = self._data_pos
            self._data_path = fill_template(self.tmp, layout.DATA_PATH, {"chunk_index": c, "file_index": f},
                                            self.root, "data path")
            self._data_path.parent.mkdir(parents=True, exist_ok=True)
        self._pending.append(table)
        self._pending_bytes += table.nbytes
        row["data/chunk_index"], row["data/file_index"] = self._data_pos
        if self._pending_bytes >= ROW_GROUP_BYTES:
            self._flush_data()

    def _data_size(self) -> int:
        """Bytes of the current data file: written, plus buffered (uncompressed)."""
        return (self._data_path.stat().st_size if self._data_path.exists() else 0) + self._pending_bytes

    def _flush_data(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        if self._data_writer is None:
            self._data_writer = pq.ParquetWriter(self._data_path, table.schema)
        self._data_writer.write_table(table)
        self._pending, self._pending_bytes = [], 0

    def _close_data(self) -> None:
        self._flush_data()
        if self._data_writer is not None:
            self._data_writer.close()
        self._data_writer = None
        self._data_path = None

    def _next_video_file(self, key: str) -> Path:
        """Close the camera's open file (if any), move to its next file position, return that file's path."""
        if key in self._videos:
            self._videos.pop(key).close()
            self._video_pos[key] = _next_file(*self._video_pos[key], self.chunks_size)
        c, f = self._video_pos[key]
        return fill_template(self.tmp, layout.VIDEO_PATH, {"video_key": key, "chunk_index": c, "file_index": f},
                             self.root, "video path")

    def _video_row(self, key: str, row: dict[str, Any], from_ts: float, to_ts: float) -> None:
        c, f = self._video_pos[key]
        row[f"videos/{key}/chunk_index"] = c
        row[f"videos/{key}/file_index"] = f
        row[f"videos/{key}/from_timestamp"] = from_ts
        row[f"videos/{key}/to_timestamp"] = to_ts

    def _write_video(self, key: str, frames: np.ndarray, row: dict[str, Any]) -> None:
        v = self._videos.get(key)
        if v is None or v.size_bytes() >= self.video_file_bytes:
            h, w, _ = self.features[key]["shape"]
            v = self._videos[key] = VideoAppender(self._next_video_file(key), self.fps, h, w, crf=self.crf,
                                                  pix_fmt=self.pix_fmt)
        self._video_row(key, row, *v.append(frames))

    def _copy_video(self, key: str, seg: VideoSegment, row: dict[str, Any]) -> None:
        v = self._videos.get(key)
        if v is None or (not v.continues(seg) and (v.size_bytes() >= self.video_file_bytes or not v.accepts(seg))):
            v = self._videos[key] = VideoCopier(self._next_video_file(key), self.fps, seg.path)
            if self._video_info.setdefault(key, v.video_info()) != v.video_info():
                raise StreamCopyError(seg.path, f"camera {key!r}: codec or pixel format {v.video_info()} differs from "
                                      f"the camera's earlier files {self._video_info[key]}")
        self._video_row(key, row, *v.append(seg))

    # -- finish ----------------------------------------------------------
    def finalize(self) -> Path:
        """Close files, write meta/ and rename the dataset into place. Returns the dataset path."""
        self._check_open()
        try:
            if self._buffer:
                raise DatasetError(self.root, f"{len(self._buffer)} frames were added but never saved as an episode "
                                   "(call save_episode or clear_episode first)")
            if not self.episodes:
                raise DatasetError(self.root, "no episodes were saved")
            self._close_data()
            for v in self._videos.values():
                v.close()
            self._videos.clear()
            self._write_meta()
            if self.root.exists():
                trash = self.root.parent / f".{self.root.name}{TMP_MARK}{os.getpid()}-old-{uuid.uuid4().hex[:8]}"
                os.rename(self.root, trash)
                os.rename(self.tmp, self.root)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.rename(self.tmp, self.root)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.root

    def abort(self) -> None:
        """Discard everything written so far; nothing is left at the target."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._data_writer is not None:
                self._data_writer.close()
            for v in self._videos.values():
                try:
                    v.close()
                except Exception:  # noqa: BLE001 - the files are being thrown away
                    pass
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _write_meta(self) -> None:
        episodes_path = self.tmp / layout.EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes_path.parent.mkdir(parents=True, exist_ok=True)
        self.episodes.write(episodes_path)
        pq.write_table(tasks_table(self.tasks), self.tmp / layout.TASKS_PATH)
        write_json_atomic(self.tmp / layout.STATS_PATH, stats_to_json(self._stats.result()))
        features = {}
        for k, v in self.features.items():
            v = dict(v)
            if v["dtype"] == "video":
                v["info"] = {**self._video_feature_info(v), **self._video_info.get(k, {})}  # a copy keeps its codec
            features[k] = v
        vla_block = {"format_version": 1, "embodiment": self.embodiment.to_dict() if self.embodiment else None,
                     **self.extra_info}
        info = {
            "codebase_version": layout.CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": len(self.episodes),
            "total_frames": self.total_frames,
            "total_tasks": len(self.tasks),
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": _int_if_whole(self.data_file_bytes / 1e6),
            "video_files_size_in_mb": _int_if_whole(self.video_file_bytes / 1e6),
            "fps": _int_if_whole(self.fps),
            "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": layout.DATA_PATH,
            "video_path": layout.VIDEO_PATH if self.video_keys else None,
            "features": embed_vla_block(features, vla_block),
            "vla": vla_block,
        }
        write_json_atomic(self.tmp / layout.INFO_PATH, info, indent=4)

    def _video_feature_info(self, spec: dict[str, Any]) -> dict[str, Any]:
        """A video feature's ``info`` with the keys LeRobot 0.6.1 writes (stream facts, then the
        encoder settings ``VideoAppender`` uses, then ``is_depth_map``)."""
        h, w, c = spec["shape"]
        return {"video.height": h, "video.width": w, "video.codec": "h264" if CODEC == "libx264" else CODEC,
                "video.pix_fmt": self.pix_fmt, "video.fps": _int_if_whole(self.fps), "video.channels": c,
                "has_audio": False, "video.g": GOP, "video.crf": self.crf, "video.preset": VIDEO_PRESET,
                "video.fast_decode": 0, "video.video_backend": "pyav", "video.extra_options": {},
                "is_depth_map": False}

    def _check_open(self) -> None:
        if self._closed:
            raise DatasetError(self.root, "writer is already finalized or aborted")


def _int_if_whole(x: float) -> int | float:
    """An int where the value is whole (LeRobot writes fps and file-size settings as ints)."""
    return int(x) if float(x).is_integer() else float(x)


def _png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
