"""Feature specs (LeRobot style: dtype, shape, names) and validation of frames against them."""

from __future__ import annotations

from typing import Any

import numpy as np

from vla.data.errors import DatasetError
from vla.data.layout import DEFAULT_FEATURES
from vla.data.safe_paths import check_name

VISUAL_DTYPES = ("video", "image")
NUMERIC_DTYPES = ("float32", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")
STRING_DTYPE = "string"


def is_visual(spec: dict[str, Any]) -> bool:
    return spec.get("dtype") in VISUAL_DTYPES


def validate_features(features: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Check user features and return them with the default per-frame columns added."""
    if not isinstance(features, dict) or not features:
        raise DatasetError(None, "features must be a non-empty dict of name -> {dtype, shape, names}")
    out: dict[str, dict[str, Any]] = {}
    for name, spec in features.items():
        check_name(name, "feature name")
        if name in DEFAULT_FEATURES:
            continue
        if not isinstance(spec, dict) or "dtype" not in spec or "shape" not in spec:
            raise DatasetError(None, f"feature {name!r}: expected a dict with 'dtype' and 'shape'")
        dtype = spec["dtype"]
        if dtype not in VISUAL_DTYPES + NUMERIC_DTYPES + (STRING_DTYPE,):
            raise DatasetError(None, f"feature {name!r}: unknown dtype {dtype!r}")
        try:
            shape = [int(s) for s in spec["shape"]]
        except (TypeError, ValueError) as e:
            raise DatasetError(None, f"feature {name!r}: shape {spec['shape']!r} is not a list of integers") from e
        if dtype in VISUAL_DTYPES and (len(shape) != 3 or shape[2] != 3):
            raise DatasetError(None, f"feature {name!r}: {dtype} shape must be [height, width, 3], got {shape}")
        clean = dict(spec)
        clean["shape"] = shape
        clean.setdefault("names", None)
        if dtype in VISUAL_DTYPES and clean["names"] is None:
            clean["names"] = ["height", "width", "channels"]
        out[name] = clean
    for name, spec in DEFAULT_FEATURES.items():
        out[name] = dict(spec)
    return out


def user_features(features: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The features a caller supplies per frame (no default bookkeeping columns)."""
    return {k: v for k, v in features.items() if k not in DEFAULT_FEATURES}


def check_frame(frame: dict[str, Any], features: dict[str, dict[str, Any]], where: str) -> dict[str, Any]:
    """Validate one frame: every feature present with the right shape; returns numpy-converted values."""
    expected = user_features(features)
    missing = [k for k in expected if k not in frame]
    if missing:
        raise DatasetError(None, f"{where}: frame is missing feature(s) {missing}")
    extra = [k for k in frame if k not in expected and k not in DEFAULT_FEATURES]
    if extra:
        raise DatasetError(None, f"{where}: frame has feature(s) not declared in features: {extra}")
    out: dict[str, Any] = {}
    for name, spec in expected.items():
        value = frame[name]
        dtype = spec["dtype"]
        if dtype == STRING_DTYPE:
            out[name] = str(value)
            continue
        arr = np.asarray(value)
        if dtype in VISUAL_DTYPES:
            if arr.dtype != np.uint8:
                raise DatasetError(None, f"{where}: feature {name!r} must be uint8 HxWx3, got dtype {arr.dtype}")
            if list(arr.shape) != spec["shape"]:
                raise DatasetError(
                    None, f"{where}: feature {name!r} expected shape {spec['shape']}, got {list(arr.shape)}"
                )
            out[name] = arr
            continue
        shape = spec["shape"]
        if arr.shape == () and shape == [1]:
            arr = arr.reshape(1)
        if list(arr.shape) != shape:
            raise DatasetError(None, f"{where}: feature {name!r} expected shape {shape}, got {list(arr.shape)}")
        out[name] = arr.astype(dtype, copy=False)
    return out
