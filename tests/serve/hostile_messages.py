"""Hostile websocket messages for fuzzing a policy server (used by the tests and benchmarks/serve_fuzz.py).

``hostile_message(rng, valid)`` returns (class name, frame) where frame is bytes or str, built from a valid
observation ``valid`` by one of the classes in ``CLASSES``: random bytes, truncated msgpack, wrong types
and shapes, NaN/Inf, object and other refused dtypes, pickle payloads, lying array headers, deep nesting,
bad UTF-8, msgpack ext types, text frames, and oversize frames (larger than the server's limit).
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np

from vla.serve.wire import pack


class _Evil:
    def __reduce__(self):
        return (exec, ("import os; os._exit(99)",))


def _nd(data: bytes, dtype: Any, shape: Any) -> dict:
    return {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}


def _random_bytes(rng: np.random.Generator, valid: dict) -> bytes:
    return rng.bytes(int(rng.integers(0, 4096)))


def _truncated(rng: np.random.Generator, valid: dict) -> bytes:
    full = pack(valid)
    return full[: int(rng.integers(0, len(full)))]


def _flipped(rng: np.random.Generator, valid: dict) -> bytes:
    full = bytearray(pack(valid))
    for i in rng.integers(0, len(full), size=int(rng.integers(1, 16))):
        full[int(i)] = int(rng.integers(0, 256))
    return bytes(full)


def _wrong_type(rng: np.random.Generator, valid: dict) -> bytes:
    obs = copy.deepcopy(valid)
    key = str(rng.choice(["images", "state", "instruction"]))
    obs[key] = [None, 1, "x", 2.5, [1, 2], {"a": 1}, True, b"\x00"][int(rng.integers(0, 8))]
    return pack(obs)


def _wrong_shape(rng: np.random.Generator, valid: dict) -> bytes:
    obs = copy.deepcopy(valid)
    if rng.random() < 0.5:
        obs["state"] = rng.normal(size=int(rng.integers(0, 40))).astype(np.float32)
    else:
        cam = next(iter(obs["images"]))
        h, w = (int(x) for x in rng.integers(0, 64, size=2))
        obs["images"][cam] = rng.integers(0, 255, (h, w, int(rng.integers(1, 5))), dtype=np.uint8)
    return pack(obs)


def _wrong_dtype(rng: np.random.Generator, valid: dict) -> bytes:
    obs = copy.deepcopy(valid)
    cam = next(iter(obs["images"]))
    dt = [np.float32, np.float64, np.int16, np.int64, bool][int(rng.integers(0, 5))]
    obs["images"][cam] = obs["images"][cam].astype(dt)
    return pack(obs)


def _non_finite(rng: np.random.Generator, valid: dict) -> bytes:
    obs = copy.deepcopy(valid)
    state = obs["state"].copy()
    state[int(rng.integers(0, len(state)))] = [np.nan, np.inf, -np.inf][int(rng.integers(0, 3))]
    obs["state"] = state
    return pack(obs)


def _refused_dtype(rng: np.random.Generator, valid: dict) -> bytes:
    dtype = ["|O", "O", "<c8", "<c16", "|V4", "<M8[ns]", "<m8", "<U4", "|S4", "object", "int", 7, None][
        int(rng.integers(0, 13))]
    obs = {"images": valid["images"], "instruction": valid["instruction"],
           "state": _nd(b"\x00" * 8 * len(valid["state"]), dtype, [len(valid["state"])])}
    return msgpack.packb(obs, default=_pack_default)


def _pickle(rng: np.random.Generator, valid: dict) -> bytes:
    payload = pickle.dumps(_Evil())
    if rng.random() < 0.5:
        return payload
    return msgpack.packb({"images": {}, "state": _nd(payload, "|O", [1]), "instruction": "x"})


def _lying_header(rng: np.random.Generator, valid: dict) -> bytes:
    shape = [[2**40], [10**6, 10**6], [-1], [3, -4], ["a"], [1.5], [2] * 40, 5, None][int(rng.integers(0, 9))]
    obs = {"images": valid["images"], "instruction": valid["instruction"],
           "state": _nd(rng.bytes(int(rng.integers(0, 64))), "<f4", shape)}
    return msgpack.packb(obs, default=_pack_default)


def _deep(rng: np.random.Generator, valid: dict) -> bytes:
    depth = int(rng.integers(30, 2000))
    return b"\x91" * depth + b"\x01" if rng.random() < 0.5 else b"\x81\xa1a" * depth + b"\x01"


def _bad_utf8(rng: np.random.Generator, valid: dict) -> bytes:
    body = pack({"images": valid["images"], "state": valid["state"]})
    # a map of 3 with a str key holding invalid UTF-8 and an invalid str value
    return b"\x83" + body[1:] + b"\xa2\xff\xfe" + b"\xa3\xc3\x28\xa0"


def _ext(rng: np.random.Generator, valid: dict) -> bytes:
    return msgpack.packb({"state": msgpack.ExtType(int(rng.integers(0, 127)), rng.bytes(8)), "images": {},
                          "instruction": "x"})


def _text(rng: np.random.Generator, valid: dict) -> str:
    return "".join(chr(int(c)) for c in rng.integers(32, 0x2FFF, size=int(rng.integers(0, 200))))


def _extra_keys(rng: np.random.Generator, valid: dict) -> bytes:
    obs = copy.deepcopy(valid)
    obs[f"k{int(rng.integers(0, 1000))}"] = np.zeros(3, np.float32)
    cams = dict(obs["images"])
    if rng.random() < 0.5:
        cams["unknown_camera"] = next(iter(cams.values()))
    obs["images"] = cams
    return pack(obs)


def _scalar_lies(rng: np.random.Generator, valid: dict) -> bytes:
    obs = {"images": valid["images"], "instruction": valid["instruction"],
           "state": {b"__npgeneric__": True, b"data": ["x", None, 2**63 - 1, b"zz", 1e308][int(rng.integers(0, 5))],
                     b"dtype": ["<f4", "<i1", "|O", "zz"][int(rng.integers(0, 4))]}}
    return msgpack.packb(obs, default=_pack_default)


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return _nd(obj.tobytes(), obj.dtype.str, list(obj.shape))
    raise TypeError(type(obj))


CLASSES: dict[str, Callable[[np.random.Generator, dict], bytes | str]] = {
    "random_bytes": _random_bytes, "truncated_msgpack": _truncated, "flipped_bytes": _flipped,
    "wrong_type": _wrong_type, "wrong_shape": _wrong_shape, "wrong_dtype": _wrong_dtype, "nan_inf": _non_finite,
    "refused_dtype": _refused_dtype, "pickle_payload": _pickle, "lying_array_header": _lying_header,
    "deep_nesting": _deep, "bad_utf8": _bad_utf8, "msgpack_ext": _ext, "text_frame": _text,
    "extra_keys": _extra_keys, "scalar_lies": _scalar_lies,
}
OVERSIZE = "oversize"


def hostile_message(rng: np.random.Generator, valid: dict, oversize_bytes: int | None = None,
                    oversize_rate: float = 0.0) -> tuple[str, bytes | str]:
    """One hostile frame; with ``oversize_bytes``, a fraction ``oversize_rate`` of frames exceed that size."""
    if oversize_bytes and rng.random() < oversize_rate:
        return OVERSIZE, b"\xc6" + (oversize_bytes + 16).to_bytes(4, "big") + b"\x00" * (oversize_bytes + 16)
    name = list(CLASSES)[int(rng.integers(0, len(CLASSES)))]
    return name, CLASSES[name](rng, valid)
