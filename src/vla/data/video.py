"""Camera streams through PyAV: many episodes appended to one MP4, decoded back by time range.

Frames are stored with pts = frame number in the file and time base 1/fps, so an episode is the
time range [from_timestamp, to_timestamp) of its file, as in LeRobot v3.0. `VideoAppender` encodes
frames (H.264); `VideoCopier` copies another file's packets (any of `COPYABLE_CODECS`) without
decoding them, renumbering their timestamps onto the same frame grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import av
import numpy as np

from vla.data.errors import DatasetError

CODEC = "libx264"
# 4:4:4 chroma: on small, aliased sim renders 4:2:0 subsampling alone caps PSNR near 34 dB, while
# yuv444p at CRF 18 gives ~43 dB. Pass pix_fmt="yuv420p" for files browsers can play.
PIX_FMT = "yuv444p"
CRF = 18
GOP = 16


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


class VideoAppender:
    """An open MP4 file that episodes' frames are appended to; ``close()`` flushes the encoder."""

    def __init__(self, path: Path, fps: float, height: int, width: int, crf: int = CRF,
                 pix_fmt: str = PIX_FMT) -> None:
        self.path = path
        self.fps = _fps_fraction(fps)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(path), mode="w")
        self._stream = self._container.add_stream(
            CODEC, rate=self.fps, options={"crf": str(crf), "preset": "veryfast", "g": str(GOP)}
        )
        self._stream.width = width
        self._stream.height = height
        self._stream.pix_fmt = pix_fmt
        self._stream.codec_context.time_base = 1 / self.fps
        self.frames = 0

    def append(self, frames: np.ndarray) -> tuple[float, float]:
        """Encode frames [T, H, W, 3] uint8; returns the episode's (from_timestamp, to_timestamp)."""
        start = self.frames
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = self.frames
            frame.time_base = 1 / self.fps
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self.frames += 1
        return float(start / self.fps), float(self.frames / self.fps)

    def size_bytes(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def close(self) -> None:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()


def video_frame_count(path: Path) -> int:
    """Number of frames in a video file, from the container (falls back to a decode)."""
    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            if s.frames:
                return int(s.frames)
            return sum(1 for _ in c.demux(s) if _.size)
    except (av.error.FFmpegError, IndexError, ValueError) as e:
        raise DatasetError(path, f"cannot read video stream: {e}") from e


def _checked_stream(container: Any, path: Path, shape: Any) -> Any:
    """The file's first video stream, its frame size checked against the limits and ``shape`` [H, W, ...]."""
    from vla.data.limits import check_image

    if not container.streams.video:
        raise DatasetError(path, "no video stream in the file")
    stream = container.streams.video[0]
    h, w = stream.codec_context.height, stream.codec_context.width
    check_image(h, w, path, "video stream")
    if shape is not None and [h, w] != [int(shape[0]), int(shape[1])]:
        raise DatasetError(path, f"video frames are {w}x{h} pixels; info.json declares "
                           f"{int(shape[1])}x{int(shape[0])}")
    return stream


def decode_range(path: Path, from_ts: float, to_ts: float, fps: float, expected: int | None = None,
                 shape: list[int] | None = None) -> np.ndarray:
    """Decode the frames of ``path`` whose timestamps lie in [from_ts, to_ts): uint8 [T, H, W, 3].

    The stream's frame size is checked against the pixel cap (and ``shape``, the feature's declared
    [H, W, 3], when given) and ``expected`` against the episode-length cap before decoding."""
    from vla.data.limits import LIMITS, check_count

    if not path.exists():
        raise DatasetError(path, "video file is missing")
    if expected is not None:
        check_count(expected, LIMITS.episode_frames, path, "frames expected")
    half = 0.5 / fps
    out: list[np.ndarray] = []
    try:
        with av.open(str(path)) as c:
            stream = _checked_stream(c, path, shape)
            stream.thread_type = "AUTO"
            if from_ts > half:
                c.seek(int(max(from_ts - half, 0) / stream.time_base), stream=stream, backward=True)
            for frame in c.decode(stream):
                t = float(frame.pts * stream.time_base) if frame.pts is not None else float(frame.time)
                if t < from_ts - half:
                    continue
                if t >= to_ts - half:
                    break
                out.append(frame.to_ndarray(format="rgb24"))
                if expected is not None and len(out) == expected:
                    break
    except (av.error.FFmpegError, ValueError, OverflowError) as e:
        raise DatasetError(path, f"cannot decode video: {e}") from e
    if expected is not None and len(out) != expected:
        raise DatasetError(
            path,
            f"video holds {len(out)} frames in [{from_ts:.4f}s, {to_ts:.4f}s) but the table says {expected}",
        )
    if not out:
        raise DatasetError(path, f"no frames in [{from_ts:.4f}s, {to_ts:.4f}s)")
    return np.stack(out)


# -- stream copy ---------------------------------------------------------------------------------------

COPYABLE_CODECS = ("h264", "hevc", "av1", "vp9")


class StreamCopyError(DatasetError):
    """A video cannot be stream-copied as asked (the conversion falls back to re-encoding)."""


@dataclass
class VideoSegment:
    """Frames [from_ts, to_ts) of camera ``key`` in a source video file, to be copied without re-encoding.

    ``sample``: the decoded frames the writer's image statistics look at (`sample_indices`)."""

    path: Path
    from_ts: float
    to_ts: float
    frames: int
    sample: np.ndarray


def sample_indices(length: int, count: int) -> np.ndarray:
    """The frames an episode's image statistics sample: ``count`` evenly spaced (as `stats.image_sample`)."""
    return np.linspace(0, length - 1, num=min(length, count)).round().astype(int)


def decode_frames(path: Path, from_ts: float, fps: float, length: int, indices: np.ndarray,
                  shape: list[int] | None = None) -> np.ndarray:
    """Frames ``indices`` (sorted) of the episode that starts at ``from_ts``, through one open file:
    decoded forward from one frame to the next, seeking only across gaps of more than two key-frame
    intervals (a dense-key-frame AV1 file is sought per frame, a long-GOP H.264 file decoded through)."""
    from vla.data.limits import LIMITS, check_count

    if not path.exists():
        raise DatasetError(path, "video file is missing")
    check_count(length, LIMITS.episode_frames, path, "frames expected")
    half = 0.5 / fps
    out: list[np.ndarray] = []
    try:
        with av.open(str(path)) as c:
            stream = _checked_stream(c, path, shape)
            gop = _gop(path)
            frames: Any = None
            pos = -(10**9)
            for i in (int(i) for i in indices):
                t = from_ts + i / fps
                if frames is None or i - pos > 2 * gop:
                    c.seek(int(max(t - half, 0) / stream.time_base), stream=stream, backward=True)
                    frames = c.decode(stream)
                for frame in frames:
                    ft = float(frame.pts * stream.time_base) if frame.pts is not None else float(frame.time)
                    if ft < t - half:
                        continue
                    if ft >= t + half:
                        raise DatasetError(path, f"no frame at {t:.4f}s (the next is at {ft:.4f}s)")
                    out.append(frame.to_ndarray(format="rgb24"))
                    pos = i
                    break
                else:
                    raise DatasetError(path, f"no frame at {t:.4f}s (the file ends before)")
    except (av.error.FFmpegError, ValueError, OverflowError) as e:
        raise DatasetError(path, f"cannot decode video: {e}") from e
    return np.stack(out)


@lru_cache(maxsize=64)
def _gop(path: Path) -> float:
    """Mean frames per key frame of a file, from its index (inf when it has no index)."""
    with av.open(str(path)) as c:
        entries = c.streams.video[0].index_entries
        keys = sum(1 for e in entries if e.is_keyframe)
        return len(entries) / keys if keys else float("inf")


def stream_params(path: Path) -> dict[str, Any]:
    """What must agree for two files' packets to share one stream: codec, size, pixel format, extradata."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise StreamCopyError(path, "no video stream in the file")
            cc = c.streams.video[0].codec_context
            return {"codec": cc.codec.canonical_name, "width": cc.width, "height": cc.height,
                    "pix_fmt": cc.pix_fmt, "extradata": bytes(cc.extradata or b"")}
    except av.error.FFmpegError as e:
        raise StreamCopyError(path, f"cannot read video stream: {e}") from e


class VideoCopier:
    """An MP4 file that episodes' packets are copied into from source files, without decoding.

    Output packets get pts = frame number, time base 1/fps (as `VideoAppender`), so an episode is
    [from_timestamp, to_timestamp) = [first frame, last frame + 1) / fps. Consecutive episodes of one
    source file form a *run*: its packets are copied in the source's decode order, so B-frames that
    reference the next episode's frames stay decodable. A run must start on a key frame (a source
    file's start always does). The source frames must lie on the 1/fps grid; anything else raises
    `StreamCopyError` (the caller then re-encodes)."""

    def __init__(self, path: Path, fps: float, template: Path) -> None:
        self.path = path
        self.fps = _fps_fraction(fps)
        self.params = stream_params(template)
        if self.params["codec"] not in COPYABLE_CODECS:
            raise StreamCopyError(template, f"codec {self.params['codec']!r} is not copied into MP4 (copied: "
                                  f"{', '.join(COPYABLE_CODECS)})")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(path), mode="w")
        with av.open(str(template)) as c:
            self._stream = self._container.add_stream_from_template(c.streams.video[0], opaque=True)
        self._stream.time_base = 1 / self.fps
        self.frames = 0  # next free output frame number
        self._last_dts: int | None = None
        self._src: Any = None  # open source container of the current run
        self._src_path: Path | None = None
        self._packets: Any = None
        self._src_tb: Fraction | None = None
        self._run_from = 0.0  # source time where the current run starts
        self._run_out = 0  # output frame number of the run's start
        self._src_to = 0.0  # source time where the last appended episode ends
        self._ahead: list[int] = []  # output frame numbers muxed ahead of the episode they belong to

    def continues(self, seg: VideoSegment) -> bool:
        """True when ``seg`` follows the last appended episode in the same source file."""
        return (self._src_path is not None and seg.path == self._src_path
                and abs(seg.from_ts - self._src_to) < 0.5 / float(self.fps))

    def accepts(self, seg: VideoSegment) -> bool:
        """True when ``seg`` can be appended here (continuing, or a new run with the same stream params)."""
        return self.continues(seg) or (not self._ahead and stream_params(seg.path) == self.params)

    def append(self, seg: VideoSegment) -> tuple[float, float]:
        """Copy the packets of ``seg``; returns its (from_timestamp, to_timestamp) in this file."""
        fps = float(self.fps)
        half = 0.5 / fps
        if not self.continues(seg):
            self._start_run(seg)
        start = self._run_out + round((seg.from_ts - self._run_from) * fps)
        if start < self.frames:
            raise StreamCopyError(seg.path, f"episode at {seg.from_ts:.4f}s overlaps the previous one in the copy")
        got = {f for f in self._ahead if start <= f < start + seg.frames}
        self._ahead = [f for f in self._ahead if f not in got]
        try:
            while len(got) < seg.frames:
                packet = next(self._packets, None)
                if packet is None:
                    break
                if packet.dts is None or packet.size == 0:
                    continue
                t = float(packet.pts * self._src_tb)
                if t < self._run_from - half:
                    continue  # before the run (a seek lands on an earlier key frame)
                frame = self._run_out + round((t - self._run_from) * fps)
                if frame < start:
                    raise StreamCopyError(seg.path, f"a packet at {t:.4f}s comes after the episode that ends there; "
                                          "the file's decode order does not follow its episodes")
                self._mux(packet, frame, seg.path)
                if frame < start + seg.frames:
                    if frame in got:
                        raise StreamCopyError(seg.path, f"two frames at {t:.4f}s: not a constant-rate video at "
                                              f"{fps:g} fps")
                    got.add(frame)
                else:
                    self._ahead.append(frame)
        except av.error.FFmpegError as e:
            raise StreamCopyError(seg.path, f"cannot copy packets: {e}") from e
        if got != set(range(start, start + seg.frames)):
            raise StreamCopyError(seg.path, f"[{seg.from_ts:.4f}s, {seg.to_ts:.4f}s) holds {len(got)} frames on the "
                                  f"1/{fps:g} s grid, the table says {seg.frames}")
        self.frames = start + seg.frames
        self._src_to = seg.to_ts
        return float(start / self.fps), float(self.frames / self.fps)

    def _start_run(self, seg: VideoSegment) -> None:
        if self._ahead:
            raise StreamCopyError(self._src_path, f"{len(self._ahead)} frame(s) copied ahead belong to an episode "
                                  "that was not copied")
        self._close_source()
        try:
            self._src = av.open(str(seg.path))
            stream = self._src.streams.video[0]
            if stream_params(seg.path) != self.params:
                raise StreamCopyError(seg.path, "stream parameters differ from the file being written")
            self._src_tb = stream.time_base
            half = 0.5 / float(self.fps)
            if seg.from_ts > half:
                self._src.seek(int(max(seg.from_ts - half, 0) / stream.time_base), stream=stream, backward=True)
            packets = self._src.demux(stream)
            first = None
            for p in packets:
                if p.dts is not None and p.size and float(p.pts * stream.time_base) >= seg.from_ts - half:
                    first = p
                    break
        except av.error.FFmpegError as e:
            raise StreamCopyError(seg.path, f"cannot read packets: {e}") from e
        if first is None:
            raise StreamCopyError(seg.path, f"no packets at or after {seg.from_ts:.4f}s")
        if not first.is_keyframe:
            raise StreamCopyError(seg.path, f"the episode at {seg.from_ts:.4f}s does not start on a key frame")
        fps = float(self.fps)
        self._src_path = seg.path
        self._run_from = seg.from_ts
        lead = round((float(first.dts * stream.time_base) - seg.from_ts) * fps)  # <= 0 with B-frames
        self._run_out = self.frames if self._last_dts is None else max(self.frames, self._last_dts + 1 - lead)

        def chain() -> Any:
            yield first
            yield from packets

        self._packets = chain()

    def _mux(self, packet: Any, frame: int, where: Path) -> None:
        fps = float(self.fps)
        dts = self._run_out + round((float(packet.dts * self._src_tb) - self._run_from) * fps)
        if self._last_dts is not None and dts <= self._last_dts:
            raise StreamCopyError(where, f"decode times do not increase at frame {frame} (dts {dts} after "
                                  f"{self._last_dts}); not a constant-rate video at {fps:g} fps")
        packet.pts, packet.dts, packet.duration = frame, dts, 1
        packet.time_base = 1 / self.fps
        packet.stream = self._stream
        self._container.mux(packet)
        self._last_dts = dts

    def video_info(self) -> dict[str, Any]:
        """The info.json video fields that describe the copied stream (codec and pixel format)."""
        return {"video.codec": self.params["codec"], "video.pix_fmt": self.params["pix_fmt"]}

    def size_bytes(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def _close_source(self) -> None:
        if self._src is not None:
            self._src.close()
        self._src, self._packets, self._src_path = None, None, None

    def close(self) -> None:
        self._close_source()
        if self._ahead:
            self._container.close()
            raise StreamCopyError(self.path, f"{len(self._ahead)} frame(s) copied ahead belong to no episode")
        self._container.close()
