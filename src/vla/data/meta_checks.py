"""Validation of a dataset's metadata as read from disk: info.json, episode rows, task tables.

Checked once at the boundary (`Dataset.open`), so the rest of the store can trust types and ranges:
every value a path, an allocation or an index is built from is checked here, with an error naming
the file, the field, what was found and what was expected.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vla.data.errors import DatasetError
from vla.data.limits import LIMITS, check_count, check_image, check_number
from vla.data.safe_paths import check_name
from vla.data.vla_block import restore_vla_block

MAX_FPS = 100_000.0
V30_DATA_FIELDS = ("chunk_index", "file_index")
V30_VIDEO_FIELDS = ("video_key", "chunk_index", "file_index")
V21_DATA_FIELDS = ("episode_chunk", "episode_index")
V21_VIDEO_FIELDS = ("episode_chunk", "video_key", "episode_index")


def check_info(info: Any, path: Path) -> dict[str, Any]:
    """info.json: an object with a version string, a finite fps > 0 and a dict of well-formed features.

    Returns the info with its ``vla`` block restored from the per-feature copy when LeRobot's tools
    dropped the top-level one (see ``vla.data.vla_block``)."""
    if not isinstance(info, dict):
        raise DatasetError(path, f"expected a JSON object at the top level, got {type(info).__name__}")
    for key in ("codebase_version", "fps", "features"):
        if key not in info:
            raise DatasetError(path, f"field {key!r} is missing")
    if not isinstance(info["codebase_version"], str):
        raise DatasetError(path, f"field 'codebase_version' is {info['codebase_version']!r}; expected a string "
                           "like 'v3.0'")
    check_number(info["fps"], path, "field 'fps'", positive=True, at_most=MAX_FPS)
    feats = info["features"]
    if not isinstance(feats, dict) or not feats:
        raise DatasetError(path, f"field 'features' is a {type(feats).__name__}; expected a non-empty object "
                           "of name -> {dtype, shape}")
    for name, spec in feats.items():
        check_feature(name, spec, path)
    if "chunks_size" in info:
        check_number(info["chunks_size"], path, "field 'chunks_size'", positive=True)
        if int(info["chunks_size"]) != info["chunks_size"]:
            raise DatasetError(path, f"field 'chunks_size' is {info['chunks_size']!r}; expected an integer")
    for key in ("robot_type", "license"):
        if info.get(key) is not None and not isinstance(info[key], str):
            raise DatasetError(path, f"field {key!r} is {info[key]!r}; expected a string")
    info = restore_vla_block(info, path)
    if info.get("vla") is not None and not isinstance(info["vla"], dict):
        raise DatasetError(path, f"field 'vla' is a {type(info['vla']).__name__}; expected an object")
    emb = (info.get("vla") or {}).get("embodiment")
    if emb is not None and not isinstance(emb, dict):
        raise DatasetError(path, f"field 'vla.embodiment' is a {type(emb).__name__}; expected an object")
    return info


def check_feature(name: Any, spec: Any, path: Path) -> None:
    """One feature: a safe name, a dtype string and a shape of non-negative ints within the caps."""
    check_name(name, "feature name", path)
    if not isinstance(spec, dict):
        raise DatasetError(path, f"features.{name}: expected an object with 'dtype' and 'shape', got "
                           f"{type(spec).__name__}")
    dtype = spec.get("dtype")
    if not isinstance(dtype, str) or not dtype:
        raise DatasetError(path, f"features.{name}: 'dtype' is {dtype!r}; expected a string such as 'float32'")
    shape = spec.get("shape")
    if not isinstance(shape, list | tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise DatasetError(path, f"features.{name}: 'shape' is {shape!r}; expected a list of integers >= 0")
    size = math.prod(shape) if shape else 1
    if dtype in ("video", "image"):
        if len(shape) != 3:
            raise DatasetError(path, f"features.{name}: {dtype} shape {list(shape)}; expected [height, width, "
                               "channels]")
        check_image(*image_hw(shape), path, f"features.{name}.shape")
    else:
        check_count(size, LIMITS.feature_values, path, f"features.{name}.shape (values per frame)")


def image_hw(shape: list[int]) -> tuple[int, int]:
    """(height, width) of an image feature's shape, [H, W, C] or channels-first [C, H, W]."""
    return (int(shape[1]), int(shape[2])) if shape[2] > 4 >= shape[0] else (int(shape[0]), int(shape[1]))


def feature_width(spec: dict[str, Any]) -> int:
    """Values per frame of a low-dimensional feature."""
    shape = spec.get("shape") or [1]
    return math.prod(shape)


def check_int(row: dict[str, Any], key: str, path: Path, what: str, limit: int | None = None) -> int:
    """An integer cell (not a bool, string or float) >= 0, optionally <= limit."""
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise DatasetError(path, f"{what}: column {key!r} is {v!r} ({type(v).__name__}); expected an integer")
    if v < 0:
        raise DatasetError(path, f"{what}: column {key!r} is {v}; expected an integer >= 0")
    if limit is not None:
        check_count(v, limit, path, f"{what}: column {key!r}")
    return v


def check_seconds(row: dict[str, Any], key: str, path: Path, what: str) -> float:
    return check_number(row.get(key), path, f"{what}: column {key!r}", at_most=LIMITS.abs_seconds)


def dense_tasks(pairs: list[tuple[Any, Any]], path: Path) -> list[str]:
    """Task strings ordered by index; the indices must be exactly 0..n-1 (n = rows of the table)."""
    check_count(len(pairs), LIMITS.tasks, path, "tasks", " rows")
    out: list[str | None] = [None] * len(pairs)
    for idx, text in pairs:
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < len(pairs):
            raise DatasetError(path, f"task_index {idx!r} out of range: the table has {len(pairs)} rows, so "
                               f"expected an integer in 0..{len(pairs) - 1}")
        if out[idx] is not None:
            raise DatasetError(path, f"task_index {idx} appears twice")
        if not isinstance(text, str):
            raise DatasetError(path, f"task {idx} is {text!r}; expected a string")
        out[idx] = text
    return [t or "" for t in out]
