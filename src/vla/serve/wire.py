"""The wire format: msgpack with numpy arrays, as openpi-client's ``msgpack_numpy`` writes it.

An array travels as ``{b"__ndarray__": True, b"data": bytes, b"dtype": "<f4", b"shape": [..]}`` and a
numpy scalar as ``{b"__npgeneric__": True, b"data": value, b"dtype": "<f4"}``. Decoding is safe for
messages from strangers: only numeric dtypes (bool, ints, floats) are accepted, never object, void or
complex ones (nothing is unpickled, nothing is imported); an array's declared shape must match the bytes
that actually arrived, so a small message can never make us allocate a large array; msgpack's own
container limits are bounded by the message size. Every failure is a ``WireError`` naming the field.

Imports numpy, msgpack and vla.errors only (the robot-side client uses this module).
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgpack
import numpy as np

from vla.errors import VlaError

MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # default per-message limit (server and client)
MAX_NDIM = 8
# msgpack lists/maps are small in every message of this protocol (arrays travel as bytes): capping them
# keeps a message of N bytes from becoming a list of N Python objects
MAX_CONTAINER_ITEMS = 4096
# numeric dtypes only: bool, signed/unsigned ints, floats; explicit byte order allowed
_DTYPE_RE = re.compile(r"^[<>|=]?(b1|\?|[iu][1248]|f[248])$")
_ND, _NG = b"__ndarray__", b"__npgeneric__"


class WireError(VlaError, ValueError):
    """A message is not valid msgpack-numpy, or holds a value we refuse (names the field)."""


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        _check_dtype_kind(obj.dtype, "array")
        # a flat byte view of the (contiguous) array: msgpack copies it straight into its buffer (no .tobytes())
        data = memoryview(np.ascontiguousarray(obj).reshape(-1).view(np.uint8))
        return {_ND: True, b"data": data, b"dtype": obj.dtype.str, b"shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        _check_dtype_kind(obj.dtype, "scalar")
        return {_NG: True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot send a {type(obj).__name__} (numbers, strings, lists, dicts and numeric arrays only)")


def _check_dtype_kind(dtype: np.dtype, what: str) -> None:
    if dtype.kind not in "biuf":
        raise TypeError(f"cannot send a {what} of dtype {dtype} (numeric dtypes only)")


def pack(obj: Any) -> bytes:
    """msgpack bytes of ``obj`` (dicts, lists, str, numbers, numeric numpy arrays and scalars)."""
    return msgpack.packb(obj, default=_pack_default, use_bin_type=True)


def _dtype(value: Any, field: str) -> np.dtype:
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    if not isinstance(text, str) or not _DTYPE_RE.match(text):
        raise WireError(f"{field}: dtype {value!r} is not allowed (numeric dtypes only, e.g. '<f4', '|u1')")
    return np.dtype(text)


def _array(obj: dict, field: str) -> np.ndarray:
    extra = set(obj) - {_ND, b"data", b"dtype", b"shape"}
    if extra:
        raise WireError(f"{field}: unexpected key(s) {sorted(map(repr, extra))} in an array")
    data, shape = obj.get(b"data"), obj.get(b"shape")
    dtype = _dtype(obj.get(b"dtype"), field)
    if not isinstance(data, bytes):
        raise WireError(f"{field}: array data must be bytes, got {type(data).__name__}")
    if not isinstance(shape, list | tuple) or len(shape) > MAX_NDIM or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise WireError(f"{field}: array shape must be a list of at most {MAX_NDIM} non-negative ints, got {shape!r}")
    count = math.prod(shape)
    if count * dtype.itemsize != len(data):
        raise WireError(f"{field}: declared shape {list(shape)} of {dtype.str} needs {count * dtype.itemsize} bytes, "
                        f"the message carries {len(data)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()  # writable, owns its memory


def _scalar(obj: dict, field: str) -> np.generic:
    dtype = _dtype(obj.get(b"dtype"), field)
    value = obj.get(b"data")
    if not isinstance(value, bool | int | float):
        raise WireError(f"{field}: scalar data must be a number, got {type(value).__name__}")
    try:
        with np.errstate(over="raise", invalid="raise"):
            return dtype.type(value)
    except (OverflowError, ValueError, FloatingPointError) as exc:
        raise WireError(f"{field}: {value!r} does not fit {dtype.str}") from exc


def _decode(obj: Any, field: str, depth: int) -> Any:
    """Walk the raw msgpack tree, turning array/scalar maps into numpy and naming fields on error."""
    if depth > 32:
        raise WireError(f"{field}: nested deeper than 32 levels")
    if isinstance(obj, dict):
        if _ND in obj:
            return _array(obj, field)
        if _NG in obj:
            return _scalar(obj, field)
        out = {}
        for key, value in obj.items():
            name = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
            if not isinstance(name, str):
                raise WireError(f"{field}: map keys must be strings, got {type(key).__name__}")
            out[name] = _decode(value, f"{field}[{name!r}]", depth + 1)
        return out
    if isinstance(obj, list):
        return [_decode(v, f"{field}[{i}]", depth + 1) for i, v in enumerate(obj)]
    return obj


def unpack(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """Decode one message; raises WireError (never anything else) for anything malformed or refused."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError(f"message: expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise WireError(f"message: {len(data)} bytes, the limit is {max_bytes}")
    n = len(data)
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True, max_str_len=n,
                              max_bin_len=n, max_array_len=min(n, MAX_CONTAINER_ITEMS),
                              max_map_len=min(n, MAX_CONTAINER_ITEMS), max_ext_len=0)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError) as exc:
        raise WireError(f"message: not valid msgpack ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # msgpack raises a few other types on hostile input (e.g. UnicodeDecodeError)
        raise WireError(f"message: not valid msgpack ({type(exc).__name__})") from None
    return _decode(raw, "message", 0)
