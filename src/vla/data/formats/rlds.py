"""RLDS / TFDS datasets without TensorFlow: dataset_info.json + features.json + TFRecord shards.

One tf.train.Example is one episode: the ``steps`` sequence is stored flattened, ``steps/<path>`` holds
the values of every step back to back (so episode boundaries come from the Example, never from
``is_last``, which some datasets leave at 0). features.json gives each feature's shape, dtype and
encoding; the number of steps is read off a fixed-shape feature and checked against every other.

Mapping to store keys (``/`` becomes ``.``):

- ``steps/observation/<img>`` (Image, JPEG/PNG) -> ``observation.images.<img>``
- ``steps/observation/state`` -> ``observation.state``; other observation tensors -> ``observation.<name>``
- ``steps/action``: a tensor -> ``action``; a dict of tensors -> ``action`` flattened in this documented
  order: ``world_vector``, ``rotation_delta``, then keys containing ``gripper``, then the remaining keys
  alphabetically (or the mapping's ``action_keys``); dim names are ``<key>_<i>``
- ``steps/language_instruction`` or ``steps/observation/natural_language_instruction`` (or any Text
  feature named in the mapping's ``instruction``) -> the per-frame task
- ``steps/reward`` -> ``next.reward``, ``steps/is_terminal`` / ``is_first`` / ``is_last`` -> bool features,
  other step tensors -> their path
- ragged features (``<key>/ragged_flat_values`` + ``ragged_row_lengths_0``, or unknown dims) are read
  per step but cannot have a fixed store shape: they are skipped with a note unless the mapping's
  ``pad`` gives a length (padded with 0, truncated beyond).
- ``episode_metadata/*`` goes to the episode's provenance ``source`` block.

Every shard of every split in dataset_info.json is read in split order (``splits`` in the mapping
restricts them); a missing shard is reported by name in the conversion notes and the rest converts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.formats.base import Reader, source_dict
from vla.data.formats.episode import ConversionError, SourceEpisode, SourceInfo, Stream
from vla.data.formats.example import parse_example
from vla.data.formats.tfrecord import iter_records
from vla.data.limits import LIMITS, check_count, check_number
from vla.data.safe_paths import check_name, inside, template_fields

TENSOR_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                 "uint64", "bool")
IMAGE = "image"
TENSOR = "tensor"
TEXT = "text"
_ACTION_FIRST = ("world_vector", "rotation_delta")
# RLDS stores no control rate. Rates of well-known Open X-Embodiment datasets (their published table);
# any other dataset needs --fps (or "fps" in the mapping).
KNOWN_FPS = {"bridge_dataset": 5.0, "bridge": 5.0, "fractal20220817_data": 3.0, "droid": 15.0,
             "language_table": 10.0, "taco_play": 15.0, "berkeley_autolab_ur5": 5.0, "toto": 30.0}


def find_root(path: Path) -> Path | None:
    """The version folder holding dataset_info.json (path itself, or its latest version subfolder)."""
    if (path / "dataset_info.json").is_file():
        return path
    if path.is_dir():
        subs = sorted((p for p in path.iterdir() if (p / "dataset_info.json").is_file()),
                      key=lambda p: [int(x) if x.isdigit() else 0 for x in p.name.split(".")])
        if subs:
            return subs[-1]
    return None


def _dims(shape: dict[str, Any] | None) -> list[int]:
    return [int(d) for d in (shape or {}).get("dimensions", [])]


def flatten_features(node: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """features.json -> {"steps/observation/image_0": {"kind", "shape", "dtype", "encoding"}, ...}."""
    out: dict[str, dict[str, Any]] = {}
    if "featuresDict" in node:
        for name, sub in node["featuresDict"]["features"].items():
            out.update(flatten_features(sub, f"{prefix}{name}/"))
        return out
    if "sequence" in node:
        inner = flatten_features(node["sequence"]["feature"], prefix)
        if prefix.rstrip("/") != "steps":  # a sequence inside a step: ragged per step
            for v in inner.values():
                v["shape"] = [-1] + list(v["shape"])
        return inner
    key = prefix.rstrip("/")
    if "image" in node:
        im = node["image"]
        return {key: {"kind": IMAGE, "shape": _dims(im.get("shape")), "dtype": im.get("dtype", "uint8"),
                      "encoding": im.get("encodingFormat", "png")}}
    if "text" in node:
        return {key: {"kind": TEXT, "shape": [], "dtype": "string", "encoding": "utf-8"}}
    if "tensor" in node:
        t = node["tensor"]
        dtype = t.get("dtype", "float32")
        if dtype not in TENSOR_DTYPES:
            raise ConversionError(f"features.json: feature {key!r}: dtype {dtype!r}; expected one of "
                                  f"{', '.join(TENSOR_DTYPES)}")
        shape = _dims(t.get("shape"))
        check_count(int(np.prod([d for d in shape if d > 0], dtype=np.float64)) if shape else 1,
                    LIMITS.feature_values, "features.json", f"feature {key!r}: shape {shape} (values per step)")
        return {key: {"kind": TENSOR, "shape": shape, "dtype": dtype, "encoding": t.get("encoding", "none")}}
    raise ConversionError(f"features.json: feature {key!r} has an unknown kind ({list(node)})")


SHARD_FIELDS = ("DATASET", "SPLIT", "FILEFORMAT", "SHARD_X_OF_Y")
MAX_SHARDS = 100_000


def _shard_names(split: Any, dataset: str, where: Path) -> list[str]:
    """File names of a split's shards from its ``filepathTemplate`` (only TFDS's documented fields)."""
    if not isinstance(split, dict) or not isinstance(split.get("name"), str):
        raise ConversionError(f"{where}: each entry of 'splits' must be an object with a string 'name', got "
                              f"{split!r}"[:300])
    template = split.get("filepathTemplate") or "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
    template_fields(template, SHARD_FIELDS, where, f"split {split['name']!r}: field 'filepathTemplate'")
    check_name(dataset, "dataset name", where)
    check_name(split["name"], "split name", where)
    lengths = split.get("shardLengths", [])
    if not isinstance(lengths, list) or len(lengths) > MAX_SHARDS:
        raise ConversionError(f"{where}: split {split['name']!r}: 'shardLengths' must be a list of at most "
                              f"{MAX_SHARDS:,} entries")
    n = len(lengths) or 1
    return [template.replace("{DATASET}", dataset).replace("{SPLIT}", split["name"])
            .replace("{FILEFORMAT}", "tfrecord").replace("{SHARD_X_OF_Y}", f"{i:05d}-of-{n:05d}")
            for i in range(n)]


class RldsReader(Reader):
    """Reads every present shard of the selected splits; `tasks()` yields raw records (cheap framing)."""

    def __init__(self, path: Path, mapping: dict[str, Any] | None = None) -> None:
        root = find_root(Path(path))
        if root is None:
            raise ConversionError(f"{path}: no dataset_info.json here or in a version subfolder "
                                  "(expected a TFDS/RLDS dataset folder)")
        self.root = root
        self.mapping = mapping or {}
        info_path, feat_path = root / "dataset_info.json", root / "features.json"
        try:
            self.dataset_info = json.loads(info_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise ConversionError(f"{info_path}: cannot read dataset_info.json ({e})") from e
        if not isinstance(self.dataset_info, dict):
            raise ConversionError(f"{info_path}: expected a JSON object, got {type(self.dataset_info).__name__}")
        if not feat_path.is_file():
            raise ConversionError(f"{feat_path}: missing (features.json gives the shapes and dtypes of the steps)")
        try:
            self.features = flatten_features(json.loads(feat_path.read_text()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise ConversionError(f"{feat_path}: invalid JSON ({e})") from e
        except (TypeError, KeyError, ValueError, AttributeError) as e:
            raise ConversionError(f"{feat_path}: not a TFDS features description ({type(e).__name__}: {e})") from e
        for key in self.features:
            for part in key.split("/"):
                check_name(part, "feature name", feat_path)
        if not any(k.startswith("steps/") for k in self.features):
            raise ConversionError(f"{feat_path}: no 'steps' sequence (expected an RLDS episode layout)")
        self.name = self.dataset_info.get("name") or root.parent.name
        wanted = self.mapping.get("splits")
        self.shards: list[tuple[str, Path]] = []
        notes = []
        splits = self.dataset_info.get("splits", [])
        if not isinstance(splits, list):
            raise ConversionError(f"{info_path}: field 'splits' is a {type(splits).__name__}; expected a list")
        for split in splits:
            if wanted and isinstance(split, dict) and split.get("name") not in wanted:
                continue
            for fname in _shard_names(split, str(self.name), info_path):
                p = inside(root, fname, info_path, f"split {split['name']!r}: field 'filepathTemplate'")
                if p.is_file():
                    self.shards.append((split["name"], p))
                else:
                    notes.append(f"split {split['name']!r}: shard {fname} listed in {info_path.name} is missing "
                                 f"from {root}; its episodes are skipped, the rest converts")
        if not self.shards:
            raise ConversionError(f"{root}: none of the shards listed in dataset_info.json is present"
                                  + (f" ({'; '.join(notes)})" if notes else ""))
        redist = self.dataset_info.get("redistributionInfo") or {}
        license_ = self.mapping.get("license") or redist.get("license") or self.dataset_info.get("license")
        if self.mapping.get("fps") is not None:
            check_number(self.mapping["fps"], "mapping", "fps", positive=True, at_most=100_000)
        fps = self.mapping.get("fps") or KNOWN_FPS.get(self.name)
        if fps and not self.mapping.get("fps"):
            notes.append(f"control rate {fps:g} Hz taken from the known rate of dataset {self.name!r}")
        self.info = SourceInfo("rlds", float(fps) if fps else None,
                               self.mapping.get("robot_type"), self.name, license_, notes=notes)
        self.skipped = [k for k, v in self.features.items()
                        if k.startswith("steps/") and _is_ragged(v) and k not in self.mapping.get("pad", {})]
        if self.skipped:
            notes.append(f"ragged feature(s) skipped (no fixed shape; give 'pad' in the mapping): {self.skipped}")

    def tasks(self) -> Iterator[tuple[str, str, int, bytes]]:
        for split, path in self.shards:
            for i, rec in enumerate(iter_records(path)):
                yield split, str(path), i, rec

    def describe(self, task: Any) -> str:
        return f"{task[1]} record {task[2]}"

    def load(self, task: tuple[str, str, int, bytes]) -> list[SourceEpisode]:
        split, path, index, rec = task
        where = f"{path}: record {index}"
        try:
            ex = parse_example(rec)
        except ValueError as e:
            raise ConversionError(f"{where}: {e}") from e
        return [self._episode(ex, where, split, path, index)]

    # -- one Example -> one episode ----------------------------------------------------------------
    def _episode(self, ex: dict[str, Any], where: str, split: str, path: str, index: int) -> SourceEpisode:
        steps = {k: v for k, v in self.features.items() if k.startswith("steps/")}
        n = self._num_steps(ex, steps, where)
        arrays: dict[str, Any] = {}
        names: dict[str, list[str]] = {}
        action_parts: dict[str, np.ndarray] = {}
        instruction: list[str] | None = None
        instr_keys = [self.mapping["instruction"]] if self.mapping.get("instruction") else [
            "steps/language_instruction", "steps/observation/natural_language_instruction",
            "steps/observation/language_instruction"]
        for key, spec in steps.items():
            if key in self.skipped:
                continue
            if key not in ex and not any(k.startswith(key + "/ragged") for k in ex):
                raise ConversionError(f"{where}: feature {key!r} declared in features.json is missing "
                                      f"from the Example (present: {sorted(ex)[:12]}...)")
            if spec["kind"] == TEXT:
                vals = [b.decode("utf-8", "replace") for b in ex[key]]
                if len(vals) != n:
                    raise ConversionError(f"{where}: {key!r} has {len(vals)} strings, expected {n} (one per step)")
                if key in instr_keys and instruction is None:
                    instruction = vals
                continue
            value = self._decode(key, spec, ex, n, where)
            rel = key[len("steps/"):]
            if rel.startswith("action/"):
                action_parts[rel[len("action/"):]] = value.reshape(n, -1).astype(np.float32)
                continue
            out_key = _store_key(rel, spec)
            if spec["kind"] == IMAGE:
                arrays[out_key] = value  # list of encoded frames
            else:
                arrays[out_key] = value
        if action_parts:
            order = self.mapping.get("action_keys") or action_order(list(action_parts))
            missing = [k for k in order if k not in action_parts]
            if missing:
                raise ConversionError(f"{where}: action key(s) {missing} not in the Example's action dict "
                                      f"(has {sorted(action_parts)})")
            arrays["action"] = np.concatenate([action_parts[k] for k in order], axis=1)
            names["action"] = [f"{k}_{i}" for k in order for i in range(action_parts[k].shape[1])]
        meta = {k[len("episode_metadata/"):]: _jsonable(v) for k, v in ex.items()
                if k.startswith("episode_metadata/")}
        tasks = _compact(instruction) if instruction else [self.mapping.get("task") or self.name]
        tasks = [t if t.strip() else (self.mapping.get("task") or self.name) for t in tasks]
        source = source_dict("rlds", path, dataset=self.name, version=self.dataset_info.get("version"),
                             split=split, record=index, episode_metadata=meta or None)
        ts = np.arange(n, dtype=np.float64) / (self.info.fps or 1.0)
        streams = {k: Stream(ts, v, "image" if k.startswith("observation.images.") else
                             ("hold" if isinstance(v, np.ndarray) and v.dtype == bool else "linear"),
                             names=names.get(k), encoded=k.startswith("observation.images."))
                   for k, v in arrays.items()}
        return SourceEpisode(streams, tasks, self.info.fps, source, {}, streams_aligned=True)

    def _num_steps(self, ex: dict[str, Any], steps: dict[str, dict[str, Any]], where: str) -> int:
        for key, spec in steps.items():
            if key in ex and spec["kind"] in (IMAGE, TEXT):
                return len(ex[key])
            if key in ex and spec["kind"] == TENSOR and not _is_ragged(spec) and spec["encoding"] == "none":
                size = int(np.prod(spec["shape"])) if spec["shape"] else 1
                return len(ex[key]) // max(size, 1)
        raise ConversionError(f"{where}: cannot tell the number of steps (no fixed-shape step feature present)")

    def _decode(self, key: str, spec: dict[str, Any], ex: dict[str, Any], n: int, where: str) -> Any:
        if spec["kind"] == IMAGE:
            frames = list(ex[key])
            if len(frames) != n:
                raise ConversionError(f"{where}: {key!r} has {len(frames)} images, expected {n} (one per step)")
            return frames
        if _is_ragged(spec):
            return self._ragged(key, spec, ex, n, where)
        raw = ex[key]
        shape = spec["shape"]
        dtype = np.dtype("bool" if spec["dtype"] == "bool" else spec["dtype"])
        if spec["encoding"] == "bytes":  # raw bytes per step
            if len(raw) != n:
                raise ConversionError(f"{where}: {key!r} has {len(raw)} byte strings, expected {n}")
            arr = np.stack([np.frombuffer(b, dtype) for b in raw])
        else:
            arr = np.asarray(raw)
        size = int(np.prod(shape)) if shape else 1
        if arr.size != n * size:
            raise ConversionError(f"{where}: {key!r} has {arr.size} values, expected {n} steps x {shape or [1]} "
                                  f"= {n * size} (features.json shape)")
        return arr.astype(dtype).reshape((n, *shape) if shape else (n,))

    def _ragged(self, key: str, spec: dict[str, Any], ex: dict[str, Any], n: int, where: str) -> np.ndarray:
        pad = check_count(self.mapping["pad"][key], LIMITS.feature_values, "mapping", f"pad.{key}")
        flat_key, len_key = f"{key}/ragged_flat_values", f"{key}/ragged_row_lengths_0"
        if flat_key in ex:
            flat = np.asarray(ex[flat_key])
            lengths = np.asarray(ex.get(len_key, []), np.int64)
        else:
            raise ConversionError(f"{where}: ragged feature {key!r}: expected {flat_key!r} and {len_key!r}")
        if len(lengths) != n or lengths.sum() != len(flat):
            raise ConversionError(f"{where}: {len_key!r}: {len(lengths)} row lengths summing to {lengths.sum()}, "
                                  f"expected {n} rows summing to {len(flat)}")
        out = np.zeros((n, pad), np.float32 if flat.dtype.kind == "f" else np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        for i, (s, m) in enumerate(zip(starts, lengths, strict=True)):
            k = min(int(m), pad)
            out[i, :k] = flat[s:s + k]
        return out


def _is_ragged(spec: dict[str, Any]) -> bool:
    return spec["kind"] == TENSOR and any(d < 0 for d in spec["shape"])


def action_order(keys: list[str]) -> list[str]:
    """Documented flattening order of a dict action (see module docstring)."""
    first = [k for k in _ACTION_FIRST if k in keys]
    grip = sorted(k for k in keys if "gripper" in k and k not in first)
    rest = sorted(k for k in keys if k not in first and k not in grip)
    return first + grip + rest


def _store_key(rel: str, spec: dict[str, Any]) -> str:
    if rel.startswith("observation/"):
        name = rel[len("observation/"):].replace("/", ".")
        return f"observation.images.{name}" if spec["kind"] == IMAGE else f"observation.{name}"
    if rel == "reward":
        return "next.reward"
    return rel.replace("/", ".")


def _compact(tasks: list[str]) -> list[str]:
    return tasks[:1] if len(set(tasks)) == 1 else tasks


def _jsonable(v: Any) -> Any:
    if isinstance(v, list):
        vals = [b.decode("utf-8", "replace") for b in v]
        return vals[0] if len(vals) == 1 else vals
    arr = np.asarray(v).tolist()
    return arr[0] if isinstance(arr, list) and len(arr) == 1 else arr
