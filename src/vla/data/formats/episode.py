"""Neutral in-memory episode that every format reader yields and `convert` writes.

A reader knows its source format; the writer knows our store. Between them sits `SourceEpisode`:
per-stream arrays with per-stream timestamps (streams may run at different rates, e.g. MCAP topics),
the instruction, and the provenance the source itself states. `streams_aligned` is True when every
stream shares one time base at the source's fixed rate (RLDS, HDF5, LeRobot), so no resampling is
needed unless asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from vla.errors import VlaError

Interp = Literal["linear", "hold", "image"]
TASK_STREAM = "__task__"  # optional stream of per-sample instructions (held); `align` turns it into tasks


class ConversionError(VlaError, RuntimeError):
    """A source cannot be converted; the message names the file, the record/key and what was expected."""


@dataclass
class Stream:
    """One time series: `values[i]` observed at `timestamps[i]` seconds.

    `interp` says how it is resampled: "linear" (continuous), "hold" (zero-order hold: grippers,
    discrete flags) or "image" (nearest-earlier frame). `hold_dims` marks dims of a "linear" vector
    that must be held instead (e.g. the gripper dim of an action). Image streams may hold encoded
    bytes (`encoded=True`: a list of JPEG/PNG bytes, decoded only for the frames that are kept).
    """

    timestamps: np.ndarray
    values: Any
    interp: Interp = "linear"
    hold_dims: tuple[int, ...] = ()
    names: list[str] | None = None
    encoded: bool = False

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass
class SourceEpisode:
    """One episode as read from a source, before it is written into the store."""

    streams: dict[str, Stream]
    tasks: list[str]  # one instruction per frame of the aligned streams, or a single one for all
    fps: float | None
    source: dict[str, Any] = field(default_factory=dict)  # provenance source: format, path, sha256, ...
    provenance: dict[str, Any] = field(default_factory=dict)  # collector_id etc. when the source says
    streams_aligned: bool = True
    # cameras whose video is copied, not decoded (`vla.data.video.VideoSegment`, LeRobot sources)
    videos: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Number of frames (of the first stream; aligned episodes share one length)."""
        return min((len(s) for s in self.streams.values()), default=0)

    def task_at(self, i: int) -> str:
        if not self.tasks:
            return ""
        return self.tasks[i] if len(self.tasks) > 1 else self.tasks[0]


@dataclass
class SourceInfo:
    """What a reader knows about the whole source before reading episodes."""

    format: str
    fps: float | None
    robot_type: str | None = None
    dataset_name: str | None = None
    license: str | None = None
    features: dict[str, dict[str, Any]] = field(default_factory=dict)  # store feature specs (if known)
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. "split val: shard ... is missing"
    extra: dict[str, Any] = field(default_factory=dict)  # format-specific facts (action mode, ...)


def aligned_episode(
    arrays: dict[str, Any],
    fps: float,
    tasks: list[str],
    interp: dict[str, Interp] | None = None,
    names: dict[str, list[str]] | None = None,
    source: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    encoded: tuple[str, ...] = (),
) -> SourceEpisode:
    """Build an episode whose streams all share the time base `frame_index / fps`."""
    n = min(len(v) for v in arrays.values())
    ts = np.arange(n, dtype=np.float64) / fps
    interp = interp or {}
    names = names or {}
    streams = {
        k: Stream(ts, v, interp.get(k, "image" if k.startswith("observation.images.") else "linear"),
                  names=names.get(k), encoded=k in encoded)
        for k, v in arrays.items()
    }
    return SourceEpisode(streams, tasks, fps, source or {}, provenance or {}, streams_aligned=True)
