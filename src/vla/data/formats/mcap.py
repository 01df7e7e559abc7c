"""MCAP (ROS 2 bags and others) as a source: topics mapped onto store features by a mapping file.

Messages are decoded by encoding: ``cdr`` through mcap-ros2-support (ros2msg schemas), ``protobuf``
through mcap-protobuf-support, ``json`` with the standard library. The mapping (YAML or JSON)::

    fps: 10                          # output control rate (or --fps); streams are aligned onto it
    robot_type: my_arm
    time: log_time                   # or "header": header.stamp (ROS) / timestamp (foxglove)
    features:
      observation.state: {topic: /joint_states, field: position}
      observation.images.front: {topic: /camera/front/compressed}     # CompressedImage / Image, any schema
      action: {topic: /arm/command, field: data, hold_dims: [6]}      # dim 6 held, not interpolated
      observation.gripper: {topic: /gripper, field: data, interp: hold}
      # a list concatenates several sources (each resampled first): [{topic: a, field: x}, {...}]
      # field may be a list of paths: [linear.x, linear.y, angular.z]
    task: "pick up the cube"         # literal instruction, or
    instruction: {topic: /instruction, field: data}    # from a topic (held), or
    instruction: {metadata: episode, key: instruction} # from the file's metadata record
    episodes: file                   # one file per episode (default), or
    episodes: {topic: /episode_start}  # each message on this marker topic starts a new episode
                                       # (optional field: its value becomes the instruction)

Without ``task``/``instruction`` the reader looks for ``instruction``/``task``/``language_instruction`` in
any metadata record. Provenance keys (collector_id, collection_method, license, robot, ...) found in a
metadata record named ``provenance`` are taken as what the source says. Resampling onto the output
rate follows `vla.data.formats.align` (linear for continuous, hold for discrete, nearest-earlier image).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.formats.base import Reader, natural_key, source_dict
from vla.data.formats.episode import TASK_STREAM, ConversionError, SourceEpisode, SourceInfo, Stream

IMAGE_SCHEMAS_COMPRESSED = ("sensor_msgs/msg/CompressedImage", "sensor_msgs/CompressedImage",
                            "foxglove.CompressedImage", "foxglove_msgs/msg/CompressedImage")
IMAGE_SCHEMAS_RAW = ("sensor_msgs/msg/Image", "sensor_msgs/Image", "foxglove.RawImage",
                     "foxglove_msgs/msg/RawImage")
INSTRUCTION_KEYS = ("instruction", "task", "language_instruction")
PROVENANCE_KEYS = ("collector_id", "collection_method", "license", "annotation_protocol")


def make_reader(f: Any, path: Path) -> Any:
    from mcap.reader import make_reader as _make

    try:
        return _make(f)
    except Exception as e:  # mcap raises its own error types for bad magic / records
        raise ConversionError(f"{path}: not a readable MCAP file ({type(e).__name__}: {e})") from e


class Decoders:
    """Per-channel message decoders: cdr (ROS 2), protobuf, json."""

    def __init__(self, path: Path) -> None:
        from mcap_protobuf.decoder import DecoderFactory as PbFactory
        from mcap_ros2.decoder import DecoderFactory as Ros2Factory

        self.path = path
        self.factories = [Ros2Factory(), PbFactory()]
        self.cache: dict[int, Any] = {}

    def __call__(self, schema: Any, channel: Any, message: Any) -> Any:
        enc = channel.message_encoding
        try:
            if enc == "json":
                return json.loads(message.data)
            dec = self.cache.get(channel.id)
            if dec is None:
                for factory in self.factories:
                    dec = factory.decoder_for(enc, schema)
                    if dec is not None:
                        break
                if dec is None:
                    raise ConversionError(f"{self.path}: topic {channel.topic!r}: no decoder for message encoding "
                                          f"{enc!r} (expected cdr, protobuf or json)")
                self.cache[channel.id] = dec
            return dec(message.data)
        except ConversionError:
            raise
        except Exception as e:
            raise ConversionError(f"{self.path}: topic {channel.topic!r}: cannot decode {enc} message at log_time "
                                  f"{message.log_time} ({type(e).__name__}: {e})") from e


def get_field(msg: Any, path: str, where: str) -> Any:
    cur = msg
    for part in path.split("."):
        if isinstance(cur, dict):
            if part not in cur:
                raise ConversionError(f"{where}: field {path!r}: no {part!r} (has {sorted(cur)})")
            cur = cur[part]
        elif hasattr(cur, part):
            cur = getattr(cur, part)
        else:
            have = [a for a in dir(cur) if not a.startswith("_")][:20]
            raise ConversionError(f"{where}: field {path!r}: message has no {part!r} (has {have})")
    return cur


def numeric(value: Any, where: str) -> np.ndarray:
    if isinstance(value, bytes | bytearray):
        return np.frombuffer(value, np.uint8).astype(np.float64)
    try:
        return np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise ConversionError(f"{where}: expected numbers, got {type(value).__name__}") from e


def message_time(msg: Any, log_time: int, mode: str, where: str) -> int:
    if mode == "log_time":
        return log_time
    for path in ("header.stamp", "timestamp"):
        try:
            st = get_field(msg, path, where)
        except ConversionError:
            continue
        sec = _first_attr(st, ("sec", "seconds"))
        nsec = _first_attr(st, ("nanosec", "nsec", "nanos"))
        return int(sec) * 1_000_000_000 + int(nsec)
    raise ConversionError(f"{where}: time: header asked but the message has no header.stamp or timestamp")


def _first_attr(obj: Any, names: tuple[str, ...]) -> Any:
    for n in names:
        if isinstance(obj, dict) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            return getattr(obj, n)
    return 0


def raw_image(msg: Any, where: str) -> np.ndarray:
    from vla.data.limits import check_image

    h, w = int(get_field(msg, "height", where)), int(get_field(msg, "width", where))
    check_image(h, w, where, "raw image height x width")
    enc = str(get_field(msg, "encoding", where)).lower()
    data = np.frombuffer(bytes(get_field(msg, "data", where)), np.uint8)
    step = int(get_field(msg, "step", where)) if _has(msg, "step") else 0
    ch = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}.get(enc)
    if ch is None:
        raise ConversionError(f"{where}: raw image encoding {enc!r} unsupported (expected rgb8, bgr8, rgba8, "
                              "bgra8 or mono8)")
    step = step or w * ch
    if step < w * ch or data.size < h * step:
        raise ConversionError(f"{where}: raw image declares {w}x{h} {enc} (step {step}) = {h * step:,} bytes; the "
                              f"message holds {data.size:,}")
    img = data[: h * step].reshape(h, step)[:, : w * ch].reshape(h, w, ch)
    if enc.startswith("bgr"):
        img = img[..., [2, 1, 0]]
    elif ch == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def _has(msg: Any, name: str) -> bool:
    return (name in msg) if isinstance(msg, dict) else hasattr(msg, name)


def _sources(spec: Any, key: str) -> list[dict[str, Any]]:
    items = spec if isinstance(spec, list) else [spec]
    out = []
    for i, s in enumerate(items):
        if isinstance(s, str):
            s = {"topic": s}
        if not isinstance(s, dict) or "topic" not in s:
            raise ConversionError(f"mapping: features.{key}[{i}]: expected {{topic: ..., field: ...}}, got {s!r}")
        out.append(s)
    return out


class McapReader(Reader):
    """One .mcap file or a folder of them (natural order); a work item is one file."""

    def __init__(self, path: Path, mapping: dict[str, Any] | None = None) -> None:
        self.root = Path(path)
        self.mapping = mapping or {}
        if self.root.is_dir():
            self.files = sorted(self.root.glob("*.mcap"), key=lambda p: natural_key(p.name))
        else:
            self.files = [self.root]
        if not self.files:
            raise ConversionError(f"{self.root}: no .mcap files found")
        feats = self.mapping.get("features")
        if not feats or not isinstance(feats, dict):
            topics = self._topics(self.files[0])
            listing = ", ".join(f"{t} ({s})" for t, s in topics)
            raise ConversionError(
                f"{self.files[0]}: an MCAP conversion needs a mapping file (--mapping) with 'features' "
                f"(topic + field -> feature, e.g. observation.state: {{topic: /joint_states, field: position}}). "
                f"Topics in this file: {listing or 'none'}")
        from vla.data.limits import check_number
        from vla.data.safe_paths import check_name

        for k in feats:
            check_name(k, "mapping: feature name", "mapping")
        self.features = {k: _sources(v, k) for k, v in feats.items()}
        if "action" not in self.features:
            raise ConversionError("mapping: features must include 'action' (the command topic)")
        self.time_mode = self.mapping.get("time", "log_time")
        if self.time_mode not in ("log_time", "header"):
            raise ConversionError(f"mapping: time must be log_time or header, got {self.time_mode!r}")
        split = self.mapping.get("episodes", "file")
        self.marker = None if split == "file" else (split if isinstance(split, dict) else {"topic": split})
        if self.marker is not None and "topic" not in self.marker:
            raise ConversionError(f"mapping: episodes must be 'file' or {{topic: /marker}}, got {split!r}")
        fps = self.mapping.get("fps")
        if fps is not None:
            check_number(fps, "mapping", "fps", positive=True, at_most=100_000)
        self.info = SourceInfo("mcap", float(fps) if fps else None, self.mapping.get("robot_type"),
                               self.mapping.get("dataset") or self.root.stem, self.mapping.get("license"))

    @staticmethod
    def _topics(path: Path) -> list[tuple[str, str]]:
        with open(path, "rb") as f:
            r = make_reader(f, path)
            try:
                s = r.get_summary()
            except Exception:  # noqa: BLE001 - listing is best effort in an error message
                return []
            if s is None:
                return []
            return [(c.topic, s.schemas[c.schema_id].name if c.schema_id in s.schemas else "?")
                    for c in s.channels.values()]

    def tasks(self) -> Iterator[str]:
        for p in self.files:
            yield str(p)

    def load(self, task: str) -> list[SourceEpisode]:
        from vla.errors import VlaError

        path = Path(task)
        try:
            with open(path, "rb") as f:
                return self._read_file(make_reader(f, path), path)
        except VlaError:
            raise
        except Exception as e:  # mcap's own errors on damaged records (header, summary, indexes)
            raise ConversionError(f"{path}: not a readable MCAP file ({type(e).__name__}: {e})") from e

    def _read_file(self, reader: Any, path: Path) -> list[SourceEpisode]:
        topics: dict[str, list[tuple[str, int, dict[str, Any]]]] = {}
        for key, srcs in self.features.items():
            for i, s in enumerate(srcs):
                topics.setdefault(s["topic"], []).append((key, i, s))
        instr = self.mapping.get("instruction")
        instr_topic = instr.get("topic") if isinstance(instr, dict) else None
        marker_topic = self.marker["topic"] if self.marker else None
        wanted = set(topics) | {t for t in (instr_topic, marker_topic) if t}
        # per (feature, source index): times (ns) and values; images keep encoded bytes
        series: dict[tuple[str, int], tuple[list[int], list[Any]]] = {}
        instr_series: tuple[list[int], list[str]] = ([], [])
        markers: list[tuple[int, str | None]] = []
        seen: set[str] = set()
        decode = Decoders(path)
        try:
            messages = reader.iter_messages(topics=sorted(wanted), log_time_order=True)
            for schema, channel, message in messages:
                topic = channel.topic
                seen.add(topic)
                where = f"{path}: topic {topic!r}"
                msg = decode(schema, channel, message)
                t = message_time(msg, message.log_time, self.time_mode, where)
                if topic == marker_topic:
                    field = self.marker.get("field")
                    markers.append((t, str(get_field(msg, field, where)) if field else None))
                if topic == instr_topic:
                    instr_series[0].append(t)
                    instr_series[1].append(str(get_field(msg, instr.get("field", "data"), where)))
                for key, i, spec in topics.get(topic, []):
                    value = self._value(msg, schema, key, spec, where)
                    ts, vs = series.setdefault((key, i), ([], []))
                    ts.append(t)
                    vs.append(value)
        except ConversionError:
            raise
        except Exception as e:  # truncated or corrupt chunks surface as mcap/struct/zstd errors
            raise ConversionError(f"{path}: cannot read messages ({type(e).__name__}: {e}); the file may be "
                                  "truncated or corrupted") from e
        missing = sorted(t for t in wanted if t not in seen)
        if missing:
            have = ", ".join(f"{t} ({s})" for t, s in self._topics(path))
            raise ConversionError(f"{path}: mapped topic(s) {missing} have no messages (topics in the file: {have})")
        meta = self._metadata(reader)
        file_task = self._file_instruction(meta, path)
        prov = {k: v for k, v in meta.get("provenance", {}).items() if k in PROVENANCE_KEYS}
        robot = meta.get("provenance", {}).get("robot")
        base = source_dict("mcap", path, dataset=self.info.dataset_name, robot=robot,
                           profile=reader.get_header().profile or None)
        t0 = min(ts[0] for ts, _ in series.values())
        bounds = self._bounds(markers, t0)
        episodes = []
        for ei, (start, end, marker_task) in enumerate(bounds):
            streams = self._streams(series, start, end, t0, path, ei)
            if not streams:
                continue
            tasks = self._tasks(instr_series, start, end, t0, marker_task, file_task, streams)
            source = dict(base, episode_in_file=ei) if self.marker else base
            episodes.append(SourceEpisode(streams, tasks, self.info.fps, source, dict(prov), streams_aligned=False))
        return episodes

    def _value(self, msg: Any, schema: Any, key: str, spec: dict[str, Any], where: str) -> Any:
        name = schema.name if schema is not None else ""
        if key.startswith("observation.images."):
            if name in IMAGE_SCHEMAS_RAW or (_has(msg, "encoding") and _has(msg, "height")):
                return raw_image(msg, where)
            data = get_field(msg, spec.get("field", "data"), where)
            if isinstance(data, str):  # JSON-encoded CompressedImage carries base64 data
                import base64

                data = base64.b64decode(data)
            return bytes(data)
        fields = spec.get("field", "data")
        fields = fields if isinstance(fields, list) else [fields]
        return np.concatenate([numeric(get_field(msg, f, where), f"{where} field {f!r}") for f in fields])

    @staticmethod
    def _metadata(reader: Any) -> dict[str, dict[str, str]]:
        try:
            return {m.name: dict(m.metadata) for m in reader.iter_metadata()}
        except Exception:  # noqa: BLE001 - files without a summary have no indexed metadata
            return {}

    def _file_instruction(self, meta: dict[str, dict[str, str]], path: Path) -> str | None:
        if self.mapping.get("task"):
            return str(self.mapping["task"])
        instr = self.mapping.get("instruction")
        if isinstance(instr, dict) and "metadata" in instr:
            rec, key = instr["metadata"], instr.get("key", "instruction")
            if rec not in meta or key not in meta[rec]:
                raise ConversionError(f"{path}: instruction from metadata record {rec!r} key {key!r}: not found "
                                      f"(metadata records: {sorted(meta)})")
            return meta[rec][key]
        if isinstance(instr, str):
            return instr
        for rec in meta.values():
            for k in INSTRUCTION_KEYS:
                if k in rec:
                    return rec[k]
        return None

    def _bounds(self, markers: list[tuple[int, str | None]], t0: int) -> list[tuple[int, int, str | None]]:
        if self.marker is None:
            return [(-(2**62), 2**62, None)]
        if not markers:
            raise ConversionError(f"marker topic {self.marker['topic']!r} has no messages")
        out = []
        for i, (t, task) in enumerate(markers):
            end = markers[i + 1][0] if i + 1 < len(markers) else 2**62
            out.append((t, end, task))
        return out

    def _streams(self, series: dict[tuple[str, int], tuple[list[int], list[Any]]], start: int, end: int,
                 t0: int, path: Path, ei: int) -> dict[str, Stream]:
        streams: dict[str, Stream] = {}
        for key, srcs in self.features.items():
            parts = []
            for i, spec in enumerate(srcs):
                ts, vs = series[(key, i)]
                sel = [j for j, t in enumerate(ts) if start <= t < end]
                if not sel:
                    if self.marker is not None:
                        return {}  # an episode without data on a mapped topic: nothing to align
                    raise ConversionError(f"{path}: topic {spec['topic']!r} has no messages for {key}")
                t = (np.asarray([ts[j] for j in sel], np.int64) - t0) / 1e9
                if key.startswith("observation.images."):
                    vals = [vs[j] for j in sel]
                    encoded = isinstance(vals[0], bytes)
                    parts.append(Stream(t, vals if encoded else np.stack(vals), "image", encoded=encoded))
                    continue
                dims = {len(vs[j]) for j in sel}
                if len(dims) != 1:
                    raise ConversionError(f"{path}: topic {spec['topic']!r} field {spec.get('field', 'data')!r} "
                                          f"changes length across messages ({sorted(dims)}); expected a fixed size")
                arr = np.stack([vs[j] for j in sel]).astype(np.float32)
                interp = spec.get("interp", "linear")
                if interp not in ("linear", "hold"):
                    raise ConversionError(f"mapping: features.{key}: interp must be linear or hold, got {interp!r}")
                parts.append(Stream(t, arr, interp, tuple(int(d) for d in spec.get("hold_dims", ())),
                                    names=spec.get("names")))
            if len(parts) == 1:
                streams[key] = parts[0]
            else:
                for i, p in enumerate(parts):
                    streams[f"{key}#{i}"] = p
        return streams

    def _tasks(self, instr: tuple[list[int], list[str]], start: int, end: int, t0: int, marker_task: str | None,
               file_task: str | None, streams: dict[str, Stream]) -> list[str]:
        """A single instruction, or (instruction topic) a held `TASK_STREAM` added to `streams`."""
        if marker_task:
            return [marker_task]
        if instr[0]:
            sel = [j for j, t in enumerate(instr[0]) if t < end]
            first_in = [j for j in sel if instr[0][j] >= start]
            before = [j for j in sel if instr[0][j] < start]
            keep = before[-1:] + first_in
            if keep:
                # the instruction in force at the episode start is stamped there, so it covers the start
                ts = np.asarray([max(instr[0][j], start) if start > -(2**61) else instr[0][j] for j in keep],
                                np.int64)
                vals = [instr[1][j] for j in keep]
                if len(set(vals)) == 1:
                    return [vals[0]]
                streams[TASK_STREAM] = Stream((ts - t0) / 1e9, vals, "hold")
                return []
        return [file_task or self.info.dataset_name or "unspecified task"]
