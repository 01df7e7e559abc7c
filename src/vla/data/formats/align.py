"""Time alignment of a source episode: every stream onto one control-rate grid, images decoded.

The rules (latency offsets, the output grid ``t_k = t_0 + k / fps`` over the streams' common span, linear
interpolation for continuous signals, zero-order hold for discrete ones and gripper dims, nearest-earlier
frames for images, pass-through of an episode already on a common time base) are steps 1 and 2 of
`vla.data.standardize`. Used by every converter (`vla.data.formats.convert`) before the writer.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla.data.formats.episode import TASK_STREAM, ConversionError, SourceEpisode, Stream


@dataclass
class AlignedEpisode:
    """Frames on one time base, ready for the writer: arrays [T, ...] (images decoded uint8 HxWx3)."""

    frames: dict[str, np.ndarray]
    tasks: list[str]
    fps: float
    source: dict[str, Any]
    provenance: dict[str, Any]
    timestamps: np.ndarray | None = None  # seconds from the episode start; None = frame_index / fps
    names: dict[str, list[str]] = field(default_factory=dict)  # per-dimension names where the source has them
    videos: dict[str, Any] = field(default_factory=dict)  # copied cameras (VideoSegment), passed through as is

    @property
    def length(self) -> int:
        return len(self.tasks)


# -- resampling ----------------------------------------------------------------------------------


def output_grid(streams: dict[str, Stream], fps: float, offsets: dict[str, float],
                where: str = "episode") -> np.ndarray:
    """Times ``t_0 + k / fps`` covered by every stream (after offsets).

    The grid's length is checked before it is built: at most ``LIMITS.episode_frames`` frames and
    ``LIMITS.grid_per_sample`` frames per sample of the longest stream (two samples a day apart do not
    make a million-frame episode)."""
    if not streams:
        raise ConversionError("episode has no streams to align")
    starts, ends = [], []
    for k, s in streams.items():
        if len(s) == 0:
            raise ConversionError(f"stream {k!r} has no samples in this episode (expected at least one)")
        t = np.asarray(s.timestamps, np.float64) + offsets.get(k, 0.0)
        if not np.all(np.isfinite(t)):
            raise ConversionError(f"{where}: stream {k!r} has a non-finite timestamp (NaN or Inf)")
        starts.append(t[0])
        ends.append(t[-1])
    t0, t1 = max(starts), min(ends)
    if t1 < t0:
        raise ConversionError(f"streams do not overlap in time (latest start {t0:.6f}s > earliest end {t1:.6f}s)")
    from vla.data.limits import check_grid

    samples = max(len(s) for s in streams.values())
    n = check_grid(math.floor((t1 - t0) * fps + 1e-6) + 1, samples, where, "output grid")
    return t0 + np.arange(n, dtype=np.float64) / fps


TIME_TOLERANCE = 1e-4  # s: a sample stamped this close after a grid time counts as at it (float32 stamps)


def earlier_index(t: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Index of the latest sample at or before each grid time, within `TIME_TOLERANCE` (first if none)."""
    idx = np.searchsorted(t, grid + TIME_TOLERANCE, side="right") - 1
    return np.clip(idx, 0, len(t) - 1)


def resample_stream(s: Stream, grid: np.ndarray, offset: float = 0.0) -> Any:
    """Values of one stream on `grid` (see module docstring for the rules)."""
    t = np.asarray(s.timestamps, np.float64) + offset
    order = np.argsort(t, kind="stable")
    if np.any(order != np.arange(len(t))):
        t = t[order]
        s = Stream(t - offset, _take(s.values, order), s.interp, s.hold_dims, s.names, s.encoded)
    idx = earlier_index(t, grid)
    if s.interp != "linear" or not isinstance(s.values, np.ndarray) or s.values.dtype.kind not in "fc":
        return _take(s.values, idx)
    v = s.values
    flat = v.reshape(len(v), -1).astype(np.float64)
    out = np.empty((len(grid), flat.shape[1]), np.float64)
    for d in range(flat.shape[1]):
        out[:, d] = np.interp(grid, t, flat[:, d])
    for d in s.hold_dims:
        out[:, d] = flat[idx, d]
    return out.astype(v.dtype).reshape((len(grid),) + v.shape[1:])


def _take(values: Any, idx: np.ndarray) -> Any:
    if isinstance(values, np.ndarray):
        return values[idx]
    return [values[i] for i in idx]


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Decode JPEG/PNG bytes to uint8 HxWx3."""
    from PIL import Image

    from vla.data.errors import DatasetError
    from vla.data.limits import check_image

    try:
        with Image.open(io.BytesIO(data)) as im:
            check_image(im.size[1], im.size[0], where, "image")
            return np.asarray(im.convert("RGB"))
    except DatasetError:
        raise
    except Exception as e:  # PIL raises several types for corrupt data
        raise ConversionError(f"{where}: cannot decode image ({len(data)} bytes; expected JPEG or PNG): {e}") from e


def align(ep: SourceEpisode, fps: float | None = None, offsets: dict[str, float] | None = None,
          where: str = "episode") -> AlignedEpisode:
    """Put every stream of `ep` on one time base at `fps` (source fps if None) and decode images."""
    offsets = offsets or {}
    unknown = [k for k in offsets if k not in ep.streams]
    if unknown:
        raise ConversionError(f"{where}: --offset for unknown stream(s) {unknown}; streams: {sorted(ep.streams)}")
    target = fps or ep.fps
    if target is None:
        raise ConversionError(f"{where}: the source has no fixed rate; give the output control rate (--fps)")
    # an aligned source without a rate of its own (RLDS) is taken to run at the requested rate
    passthrough = ep.streams_aligned and not offsets and (ep.fps is None or abs(target - ep.fps) < 1e-9)
    tasks = ep.tasks
    if ep.streams_aligned and ep.fps is None:
        ep = SourceEpisode({k: Stream(np.arange(len(s)) / target, s.values, s.interp, s.hold_dims, s.names,
                                      s.encoded) for k, s in ep.streams.items()},
                           ep.tasks, target, ep.source, ep.provenance, True)
    if passthrough:
        n = ep.length
        frames = {k: _take(s.values, np.arange(n)) if not isinstance(s.values, np.ndarray) else s.values[:n]
                  for k, s in ep.streams.items()}
        task_list = [ep.task_at(i) for i in range(n)]
        first = next(iter(ep.streams.values()), None)
        timestamps = (np.asarray(first.timestamps[:n], np.float64) if first is not None
                      else np.arange(n) / target)
    else:
        streams = dict(ep.streams)
        task_stream = None
        if len(tasks) > 1:  # per-frame instructions ride along as a held stream on the first stream's clock
            first = next(iter(streams.values()))
            task_stream = Stream(first.timestamps[: len(tasks)], list(tasks), "hold")
        grid = output_grid({k: s for k, s in streams.items() if k != TASK_STREAM}, target, offsets, where)
        frames = {k: resample_stream(s, grid, offsets.get(k, 0.0)) for k, s in streams.items()}
        n = len(grid)
        if task_stream is not None:
            task_list = list(resample_stream(task_stream, grid))
        else:
            task_list = [tasks[0] if tasks else ""] * n
        timestamps = np.arange(n, dtype=np.float64) / target
    for k, s in ep.streams.items():
        if k == TASK_STREAM:
            continue
        if s.encoded:
            frames[k] = np.stack([decode_image(b, f"{where}, {k}, frame {i}") for i, b in enumerate(frames[k])])
        elif not isinstance(frames[k], np.ndarray):
            frames[k] = np.asarray(frames[k])
    names = {k: s.names for k, s in ep.streams.items() if s.names}
    if TASK_STREAM in frames:
        task_list = [str(t) for t in frames.pop(TASK_STREAM)]
    frames, names = _join_parts(frames, names)
    return AlignedEpisode(frames, task_list, float(target), ep.source, ep.provenance, timestamps, names)


def _join_parts(frames: dict[str, Any], names: dict[str, list[str]]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Concatenate streams ``key#0, key#1, ...`` (several sources of one feature) along the last axis."""
    parts: dict[str, list[str]] = {}
    for k in frames:
        if "#" in k:
            parts.setdefault(k.split("#")[0], []).append(k)
    for key, ks in parts.items():
        ks.sort(key=lambda k: int(k.split("#")[1]))
        arrays = [np.asarray(frames.pop(k)) for k in ks]
        frames[key] = np.concatenate([a.reshape(len(a), -1) for a in arrays], axis=1)
        if all(k in names for k in ks):
            names[key] = [n for k in ks for n in names.pop(k)]
    return frames, names
