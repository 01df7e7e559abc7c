"""Convert any supported source into our store: detect, read (in worker processes), align, write.

``convert(src, dst)`` detects the format, reads episodes through the format's `Reader`, aligns them on
one control rate (`vla.data.formats.align`), optionally normalizes / converts actions, and writes them
with `DatasetWriter`. The writer builds in a temporary folder and renames at finalize; any error
aborts it, so a failed conversion leaves nothing at ``dst``. Errors name the source file, the
record/key and what was expected.

Videos of a LeRobot source are stream-copied (packets copied into the new MP4 files, not decoded
and re-encoded: frame-exact and much faster) when nothing asks for new timing: no ``fps`` other than
the source's, no ``offsets``, video output. ``video_copy=False`` (``--reencode``) re-encodes anyway; a
source whose video cannot be copied (not on the 1/fps frame grid, episodes not starting on key frames
where a copy must start) is re-encoded with a note, or refused when ``video_copy=True``.

Parallelism: `Reader.tasks()` yields small work items in the main process; ``workers > 1`` decodes
them in a process pool with at most ``2 x workers`` items in flight, results consumed in order, so
output is deterministic and memory stays bounded by the in-flight episodes. Work items and decoded
episodes cross process boundaries through multiprocessing's own IPC (nothing is persisted with pickle).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import struct
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.formats.align import AlignedEpisode, align
from vla.data.formats.base import Reader
from vla.data.formats.episode import ConversionError
from vla.data.standardize import (
    ACTION_KEY,
    STATE_KEY,
    Plan,
    StandardizeConfig,
    make_plan,
    stats_pass,
    transform,
)

FORMATS = ("lerobot", "rlds", "mcap", "hdf5")
# What a reader raises on a value of the wrong type or range that no check named first: reported as a
# ConversionError naming the work item (one clean error), never as a traceback.
MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, UnicodeError,
             struct.error, RecursionError)
PROVENANCE_REQUIRED = ("collector_id", "collection_method")


@dataclass
class ConvertReport:
    """What a conversion did (returned by `convert`, printed as JSON by the CLI)."""

    src: str
    dst: str
    format: str
    episodes: int = 0
    frames: int = 0
    fps: float = 0.0
    features: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    copied_videos: list[str] = field(default_factory=list)  # cameras whose packets were copied, not re-encoded

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- detection / opening ---------------------------------------------------------------------------


def detect_format(src: str | Path) -> str:
    """lerobot | rlds | mcap | hdf5, from the files present; ConversionError when none fits."""
    from vla.data.formats.hdf5 import is_hdf5
    from vla.data.formats.lerobot import is_lerobot
    from vla.data.formats.rlds import find_root

    p = Path(src)
    if not p.exists():
        raise ConversionError(f"{p}: no such file or folder")
    if p.is_file():
        if p.suffix == ".mcap":
            return "mcap"
        if is_hdf5(p):
            return "hdf5"
        if p.suffix.startswith(".tfrecord") or ".tfrecord" in p.name:
            raise ConversionError(f"{p}: a bare TFRecord shard; pass its dataset folder (with dataset_info.json)")
        raise ConversionError(f"{p}: unknown file type (expected .mcap or an HDF5 file)")
    if is_lerobot(p):
        return "lerobot"
    if find_root(p) is not None:
        return "rlds"
    if any(p.glob("*.mcap")):
        return "mcap"
    if any(is_hdf5(f) for f in sorted(p.iterdir()) if f.is_file()):
        return "hdf5"
    raise ConversionError(f"{p}: cannot tell the format (no meta/info.json, dataset_info.json, *.mcap or HDF5 "
                          "files); pass --format")


def load_mapping(mapping: str | Path | dict[str, Any] | None) -> dict[str, Any]:
    """A mapping/provenance file (YAML or JSON) or dict -> dict."""
    if mapping is None:
        return {}
    if isinstance(mapping, dict):
        return mapping
    p = Path(mapping)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConversionError(f"{p}: cannot read ({e})") from e
    try:
        if p.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # yaml and json raise their own types
        raise ConversionError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {e}") from e
    if not isinstance(data, dict):
        raise ConversionError(f"{p}: expected a mapping (key: value) at the top level, got {type(data).__name__}")
    return data


def open_reader(src: str | Path, format: str = "auto", mapping: dict[str, Any] | None = None,
                skip_missing_videos: bool = False) -> Reader:
    """The reader of ``src``; a malformed source or mapping raises ConversionError, never a traceback."""
    try:
        return _open_reader(src, format, mapping, skip_missing_videos)
    except MALFORMED as e:
        raise ConversionError(f"{src}: malformed input ({type(e).__name__}: {e})"[:2000]) from e


def _open_reader(src: str | Path, format: str = "auto", mapping: dict[str, Any] | None = None,
                 skip_missing_videos: bool = False) -> Reader:
    fmt = detect_format(src) if format == "auto" else format
    mapping = mapping or {}
    if skip_missing_videos and fmt != "lerobot":
        raise ConversionError(f"{src}: --skip-missing-videos is for LeRobot sources; this is {fmt}")
    if fmt == "lerobot":
        from vla.data.formats.lerobot import LeRobotReader

        return LeRobotReader(Path(src), mapping=mapping, skip_missing_videos=skip_missing_videos)
    if fmt == "rlds":
        from vla.data.formats.rlds import RldsReader

        return RldsReader(Path(src), mapping)
    if fmt == "mcap":
        from vla.data.formats.mcap import McapReader

        return McapReader(Path(src), mapping)
    if fmt == "hdf5":
        from vla.data.formats.hdf5 import Hdf5Reader

        return Hdf5Reader(Path(src), mapping)
    raise ConversionError(f"unknown format {fmt!r}; expected auto or one of {', '.join(FORMATS)}")


# -- provenance --------------------------------------------------------------------------------------


def merge_provenance(ep: AlignedEpisode, info_robot: str | None, file_prov: dict[str, Any], where: str,
                     license_: str | None) -> dict[str, Any]:
    """Source facts (format, path, sha256, dataset, licence, robot) + what the source says + the file."""
    prov: dict[str, Any] = dict(ep.provenance)
    for k, v in file_prov.items():
        if k in ("hardware", "calibration") and isinstance(v, dict):
            prov[k] = {**(prov.get(k) or {}), **v}
        elif k != "source":
            prov[k] = v
    source = dict(ep.source)
    source.update(file_prov.get("source") or {})
    prov["source"] = source
    if license_ and not prov.get("license"):
        prov["license"] = license_
    if info_robot:
        prov.setdefault("hardware", {})
        prov["hardware"] = {"robot": info_robot, **(prov["hardware"] or {})}
    missing = [k for k in PROVENANCE_REQUIRED if not prov.get(k)]
    if missing:
        raise ConversionError(
            f"{where}: the source does not say {' or '.join(missing)} (who collected the data and how); "
            "pass --provenance FILE (JSON or YAML) with collector_id and collection_method "
            "(teleoperation | kinesthetic | scripted | policy_rollout | intervention), and optionally hardware, "
            "calibration, annotation_protocol, license")
    return prov


# -- features ------------------------------------------------------------------------------------------


def _feature_order(key: str) -> tuple[int, str]:
    if key == STATE_KEY:
        return 0, key
    if key.startswith("observation.images."):
        return 2, key
    if key.startswith("observation."):
        return 1, key
    if key == ACTION_KEY:
        return 3, key
    return 4, key


def infer_features(ep: AlignedEpisode, names: dict[str, list[str] | None], use_videos: bool,
                   known: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Store feature specs from the first aligned episode (names from the source where known)."""
    known = known or {}
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(ep.frames, key=_feature_order):
        v = np.asarray(ep.frames[key])
        if key.startswith("observation.images."):
            if v.dtype != np.uint8 or v.ndim != 4 or v.shape[-1] != 3:
                raise ConversionError(f"{ep.source.get('path')}: {key}: expected uint8 images [T, H, W, 3], "
                                      f"got {v.dtype} {list(v.shape)}")
            out[key] = {"dtype": "video" if use_videos else "image", "shape": list(v.shape[1:]),
                        "names": ["height", "width", "channels"]}
            continue
        if v.dtype.kind in "US" or v.dtype == object:
            continue
        dtype = {"f": "float32", "b": "bool"}.get(v.dtype.kind, "int64")
        if v.dtype == np.float64 and known.get(key, {}).get("dtype") == "float64":
            dtype = "float64"
        shape = list(v.shape[1:]) or [1]
        spec: dict[str, Any] = {"dtype": dtype, "shape": shape, "names": None}
        n = names.get(key)
        if n and len(n) == int(np.prod(shape)):
            spec["names"] = list(n)
        out[key] = spec
    return out


def _cast(frames: dict[str, np.ndarray], features: dict[str, dict[str, Any]], where: str) -> dict[str, np.ndarray]:
    out = {}
    for key, spec in features.items():
        if key not in frames:
            raise ConversionError(f"{where}: feature {key!r} (present in the first episode) is missing here")
        v = np.asarray(frames[key])
        if spec["dtype"] in ("video", "image"):
            if list(v.shape[1:]) != spec["shape"]:
                raise ConversionError(f"{where}: {key}: images are {list(v.shape[1:])}, expected {spec['shape']} "
                                      "(as in the first episode)")
            out[key] = v
            continue
        v = v.astype(spec["dtype"], copy=False)
        if v.ndim == 1:
            v = v[:, None]
        if list(v.shape[1:]) != spec["shape"]:
            raise ConversionError(f"{where}: {key}: shape {list(v.shape[1:])} per frame, expected {spec['shape']} "
                                  "(as in the first episode)")
        out[key] = v
    return out


# -- pipeline ------------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(reader: Reader, fps: float | None, offsets: dict[str, float], numeric_only: bool) -> None:
    _WORKER.update(reader=reader, fps=fps, offsets=offsets, numeric_only=numeric_only)


def _prepare(task: Any) -> list[AlignedEpisode]:
    reader: Reader = _WORKER["reader"]
    where = reader.describe(task)
    out = []
    try:
        for i, ep in enumerate(reader.load(task)):
            if _WORKER["numeric_only"]:
                ep.streams = {k: s for k, s in ep.streams.items() if not k.startswith("observation.images.")}
            label = where if i == 0 else f"{where} (episode {i} in it)"
            if _WORKER["numeric_only"]:
                ep.videos = {}
            aligned = align(ep, _WORKER["fps"], _WORKER["offsets"], label)
            for key, seg in ep.videos.items():
                if seg.frames != aligned.length:
                    raise ConversionError(f"{label}: {key}: the copied video holds {seg.frames} frames, the aligned "
                                          f"episode {aligned.length} (a stream copy cannot be resampled)")
            aligned.videos = dict(ep.videos)
            aligned.source.setdefault("where", label)
            out.append(aligned)
    except MALFORMED as e:
        raise ConversionError(f"{where}: malformed input ({type(e).__name__}: {e})"[:2000]) from e
    return out


def iter_aligned(reader: Reader, fps: float | None, offsets: dict[str, float], workers: int = 1,
                 numeric_only: bool = False) -> Iterator[AlignedEpisode]:
    """Aligned episodes of a reader in order, decoded by `workers` processes (bounded in flight)."""
    if workers <= 1:
        _init_worker(reader, fps, offsets, numeric_only)
        for task in reader.tasks():
            yield from _prepare(task)
        return
    ctx = mp.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(reader, fps, offsets, numeric_only)) as pool:
        pending: deque[Future] = deque()
        tasks = iter(reader.tasks())
        try:
            for task in tasks:
                pending.append(pool.submit(_prepare, task))
                if len(pending) >= 2 * workers:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


def convert(src: str | Path, dst: str | Path, format: str = "auto", mapping: str | Path | dict | None = None,
            provenance: str | Path | dict | None = None, workers: int = 1, fps: float | None = None,
            standardize: StandardizeConfig | None = None, use_videos: bool = True,
            robot_type: str | None = None, overwrite: bool = False,
            progress: Callable[[int, int], None] | None = None, skip_missing_videos: bool = False,
            video_copy: bool | None = None) -> ConvertReport:
    """Convert `src` (LeRobot v2.1/v3.0, RLDS/TFDS, MCAP, HDF5) into our store at `dst`.

    `mapping`: format options (MCAP topics -> features, HDF5/RLDS keys, LeRobot feature renames and path
    templates, task, fps); `provenance`: who/how (required unless the source states collector_id and
    collection_method). `fps` (or ``standardize.fps``) sets the output control rate.
    `skip_missing_videos` (LeRobot): leave out the cameras whose video files are missing instead of
    failing. `video_copy` (LeRobot): None = copy video streams when possible, True = copy or fail,
    False = re-encode. Returns a `ConvertReport`.
    """
    reader = open_reader(src, format, load_mapping(mapping), skip_missing_videos)
    cfg = standardize or StandardizeConfig()
    if fps is not None:
        cfg = StandardizeConfig(**{**cfg.__dict__, "fps": float(fps)})
    return convert_reader(reader, Path(dst), provenance=provenance, standardize=cfg, workers=workers,
                          use_videos=use_videos, robot_type=robot_type, overwrite=overwrite, progress=progress,
                          src=str(src), video_copy=video_copy)


def _stream_copy_plan(reader: Reader, cfg: StandardizeConfig, use_videos: bool,
                      video_copy: bool | None) -> list[str]:
    """Cameras whose video streams are copied (and turn copying on in the reader), or []."""
    if video_copy is False:
        return []
    why = ""
    if not hasattr(reader, "enable_stream_copy"):
        why = f"the source is {reader.info.format}, not LeRobot video"
    elif not use_videos:
        why = "images (PNG) were asked for instead of video"
    elif cfg.fps is not None and abs(cfg.fps - (reader.info.fps or 0)) > 1e-9:
        why = f"--fps {cfg.fps:g} resamples the {reader.info.fps:g} Hz source"
    elif cfg.offsets:
        why = "--offset re-times streams"
    keys: list[str] = []
    if not why:
        keys, why = reader.enable_stream_copy()  # type: ignore[attr-defined]
    if video_copy and (why or not keys):
        raise ConversionError(f"stream copy asked for but not possible: {why or 'the source has no video cameras'}")
    return keys


def convert_reader(reader: Reader, dst: Path, provenance: str | Path | dict | None = None,
                   standardize: StandardizeConfig | None = None, workers: int = 1, use_videos: bool = True,
                   robot_type: str | None = None, overwrite: bool = False,
                   progress: Callable[[int, int], None] | bool | None = None, src: str = "",
                   video_copy: bool | None = None) -> ConvertReport:
    """Write every episode of `reader` into a new dataset at `dst` (nothing left there on failure).

    LeRobot videos are stream-copied when possible (see the module docstring and `video_copy`)."""
    from vla.data.video import StreamCopyError

    cfg = standardize or StandardizeConfig()
    copy_keys = _stream_copy_plan(reader, cfg, use_videos, video_copy)
    try:
        return _convert_reader(reader, dst, provenance, cfg, workers, use_videos, robot_type, overwrite, progress,
                               src, copy_keys)
    except StreamCopyError as e:
        if video_copy:
            raise ConversionError(f"{src or dst}: stream copy asked for but not possible: {e}") from e
        reader.disable_stream_copy()  # type: ignore[attr-defined]
        report = _convert_reader(reader, dst, provenance, cfg, workers, use_videos, robot_type, overwrite, progress,
                                 src, [])
        report.notes.append(f"videos re-encoded: a stream copy is not possible here ({e})")
        return report


def _convert_reader(reader: Reader, dst: Path, provenance: str | Path | dict | None, cfg: StandardizeConfig,
                    workers: int, use_videos: bool, robot_type: str | None, overwrite: bool,
                    progress: Callable[[int, int], None] | bool | None, src: str,
                    copy_keys: list[str]) -> ConvertReport:
    import time

    from vla.data.errors import DatasetError
    from vla.data.video import StreamCopyError
    from vla.data.writer import DatasetWriter

    t0 = time.perf_counter()
    file_prov = load_mapping(provenance)
    info = reader.info
    if Path(dst).exists() and not overwrite:
        raise ConversionError(f"{dst}: already exists (choose a new destination or pass overwrite)")
    report = ConvertReport(src or str(getattr(reader, "root", "")), str(dst), info.format,
                           notes=list(info.notes), copied_videos=list(copy_keys))
    src_mode = ((info.extra.get("action_mode") or {}).get("mode")) or "absolute"
    src_dims = (info.extra.get("action_mode") or {}).get("dims")
    if info.extra.get("normalization") and (cfg.normalize or cfg.action_mode or cfg.binarize_gripper is not None):
        raise ConversionError(f"{report.src}: the source is already normalized; standardize the unnormalized data")
    plan: Plan | None = None
    if cfg.needs_stats():
        def numeric() -> Iterator[dict[str, np.ndarray]]:  # one more pass over the source per call
            for ep in iter_aligned(reader, cfg.fps, cfg.offsets, workers, numeric_only=True):
                yield ep.frames

        plan = stats_pass(numeric, cfg, src_mode, src_dims)
    writer: Any = None
    features: dict[str, dict[str, Any]] = {}
    try:
        for ep in iter_aligned(reader, cfg.fps, cfg.offsets, workers):
            where = ep.source.get("where") or ep.source.get("path") or report.src
            if ep.length == 0:
                report.notes.append(f"{where}: empty episode skipped")
                continue
            prov = merge_provenance(ep, robot_type or info.robot_type, file_prov, where, info.license)
            if plan is None:
                a = ep.frames.get(ACTION_KEY)
                s = ep.frames.get(STATE_KEY)
                plan = make_plan(cfg, None, None if a is None else int(np.prod(np.shape(a)[1:]) or 1),
                                 None if s is None else int(np.prod(np.shape(s)[1:]) or 1), src_mode, src_dims)
            frames = transform(ep.frames, plan)
            if writer is None:
                names = {k: s for k, s in _names_of(reader, ep).items()}
                features = infer_features(AlignedEpisode(frames, ep.tasks, ep.fps, ep.source, ep.provenance),
                                          names, use_videos, info.features)
                for k in copy_keys:
                    features[k] = {"dtype": "video", "shape": list(info.features[k]["shape"]),
                                   "names": ["height", "width", "channels"]}
                features = dict(sorted(features.items(), key=lambda kv: _feature_order(kv[0])))
                extra = plan.info()
                extra["source"] = {"format": info.format, "path": report.src, "dataset": info.dataset_name}
                for k in ("renamed_features", "dropped_features"):
                    if info.extra.get(k):
                        extra["source"][k] = info.extra[k]
                if info.extra.get("normalization"):
                    extra["normalization"] = info.extra["normalization"]
                writer = DatasetWriter(dst, fps=ep.fps, features=features,
                                       robot_type=robot_type or info.robot_type or "unknown",
                                       embodiment=info.extra.get("embodiment"), use_videos=use_videos,
                                       overwrite=overwrite, extra_info=extra, copied_videos=copy_keys)
                report.fps = ep.fps
                report.features = features
            if abs(ep.fps - writer.fps) > 1e-9:
                raise ConversionError(f"{where}: episode at {ep.fps} Hz, the dataset is {writer.fps} Hz; pass --fps "
                                      "to resample every episode to one rate")
            missing = [k for k in copy_keys if k not in ep.videos]
            if missing:
                raise ConversionError(f"{where}: camera(s) {missing} have no video to copy")
            frames = _cast(frames, {k: v for k, v in features.items() if k not in copy_keys}, where)
            ts = ep.timestamps
            for i in range(ep.length):
                writer.add_frame({k: v[i] for k, v in frames.items()}, task=ep.tasks[i] or "unspecified task",
                                 timestamp=None if ts is None else float(ts[i]))
            writer.save_episode(prov, videos={k: ep.videos[k] for k in copy_keys})
            report.episodes += 1
            report.frames += ep.length
            if callable(progress):
                progress(report.episodes, report.frames)
        if writer is None:
            raise ConversionError(f"{report.src}: no episodes found to convert")
        writer.finalize()
    except StreamCopyError:
        if writer is not None:
            writer.abort()
        raise
    except DatasetError as e:
        if writer is not None:
            writer.abort()
        raise ConversionError(f"{report.src} -> {dst}: {e}") from e
    except MALFORMED as e:
        if writer is not None:
            writer.abort()
        raise ConversionError(f"{report.src} -> {dst}: malformed input ({type(e).__name__}: {e})"[:2000]) from e
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if copy_keys:
        report.notes.append(f"videos stream-copied (packets copied, not re-encoded): {copy_keys}")
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _names_of(reader: Reader, ep: AlignedEpisode) -> dict[str, list[str] | None]:
    """Dim names: from the source's feature specs (LeRobot) or the reader's per-stream names."""
    from vla.data.formats.lerobot import _flat_names

    out: dict[str, list[str] | None] = {}
    for k, spec in reader.info.features.items():
        out[k] = _flat_names(spec.get("names"))
    out.update({k: v for k, v in ep.names.items() if v})
    return out
