"""H.264 camera streams through PyAV: many episodes appended to one MP4, decoded back by time range.

Frames are stored with pts = frame number in the file and time base 1/fps, so an episode is the
time range [from_timestamp, to_timestamp) of its file, as in LeRobot v3.0.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

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


def decode_range(path: Path, from_ts: float, to_ts: float, fps: float, expected: int | None = None,
                 shape: list[int] | None = None) -> np.ndarray:
    """Decode the frames of ``path`` whose timestamps lie in [from_ts, to_ts): uint8 [T, H, W, 3].

    The stream's frame size is checked against the pixel cap (and ``shape``, the feature's declared
    [H, W, 3], when given) and ``expected`` against the episode-length cap before decoding."""
    from vla.data.limits import LIMITS, check_count, check_image

    if not path.exists():
        raise DatasetError(path, "video file is missing")
    if expected is not None:
        check_count(expected, LIMITS.episode_frames, path, "frames expected")
    half = 0.5 / fps
    out: list[np.ndarray] = []
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DatasetError(path, "no video stream in the file")
            stream = c.streams.video[0]
            h, w = stream.codec_context.height, stream.codec_context.width
            check_image(h, w, path, "video stream")
            if shape is not None and [h, w] != [int(shape[0]), int(shape[1])]:
                raise DatasetError(path, f"video frames are {w}x{h} pixels; info.json declares "
                                   f"{int(shape[1])}x{int(shape[0])}")
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
