"""The msgpack-numpy wire format: openpi compatibility, and refusal of everything unsafe or malformed."""

from __future__ import annotations

import pickle

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla.serve.obs_schema import ObservationError, ObservationSpec
from vla.serve.wire import WireError, pack, unpack

openpi_msgpack = pytest.importorskip("openpi_client.msgpack_numpy", reason="openpi-client is installed by setup.sh")


def test_round_trip_of_numeric_arrays_and_scalars():
    obs = {"images": {"a": np.arange(12, dtype=np.uint8).reshape(2, 2, 3)}, "state": np.array([1.5, -2], np.float32),
           "n": np.int64(7), "flag": np.bool_(True), "text": "hi", "list": [1, 2.5, "x"]}
    out = unpack(pack(obs))
    assert out["images"]["a"].dtype == np.uint8 and (out["images"]["a"] == obs["images"]["a"]).all()
    assert out["state"].tolist() == [1.5, -2.0] and out["n"] == 7 and out["n"].dtype == np.int64
    assert out["text"] == "hi" and out["list"] == [1, 2.5, "x"] and bool(out["flag"])


def test_openpi_packer_and_ours_read_each_other():
    obs = {"state": np.linspace(0, 1, 5, dtype=np.float32), "img": np.ones((4, 4, 3), np.uint8), "prompt": "go"}
    ours = unpack(openpi_msgpack.packb(obs))
    assert (ours["state"] == obs["state"]).all() and ours["prompt"] == "go"
    theirs = openpi_msgpack.unpackb(pack({"actions": np.zeros((8, 4), np.float32)}))
    assert theirs["actions"].shape == (8, 4) and theirs["actions"].dtype == np.float32


@pytest.mark.parametrize("dtype", ["|O", "<c8", "|V8", "<M8[ns]", "<U3", "O", b"|O"])
def test_non_numeric_dtypes_are_refused(dtype):
    msg = msgpack.packb({"x": {b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": dtype, b"shape": [1]}})
    with pytest.raises(WireError, match=r"message\['x'\]: dtype"):
        unpack(msg)


def test_declared_shape_must_match_the_bytes_sent():
    # a huge declared array with a few bytes of data: refused before anything is allocated
    msg = msgpack.packb({"state": {b"__ndarray__": True, b"data": b"\0" * 16, b"dtype": "<f4",
                                   b"shape": [10**6, 10**6]}})
    with pytest.raises(WireError, match=r"message\['state'\]: declared shape \[1000000, 1000000\]"):
        unpack(msg)


def test_pickle_payload_is_not_unpickled():
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle ran')",))

    with pytest.raises(WireError):
        unpack(pickle.dumps(Boom()))
    wrapped = msgpack.packb({"x": {b"__ndarray__": True, b"data": pickle.dumps(Boom()), b"dtype": "|O",
                                   b"shape": [1]}})
    with pytest.raises(WireError):
        unpack(wrapped)


def test_oversize_and_garbage_are_wire_errors():
    with pytest.raises(WireError, match="limit"):
        unpack(b"\x90" * 2048, max_bytes=1024)
    for junk in (b"", b"\xc1", b"\x92\x01", b"\xdd\xff\xff\xff\xff", b"\x81\xa1a" + b"\xd9\x05ab"):
        with pytest.raises(WireError):
            unpack(junk)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
def test_random_bytes_never_raise_anything_but_wire_error(data):
    try:
        unpack(data)
    except WireError:
        pass


def test_sending_an_object_array_is_refused():
    with pytest.raises(TypeError, match="numeric"):
        pack({"x": np.array([object()], dtype=object)})


SPEC = ObservationSpec({"cam": (4, 4, 3)}, 3)


def _obs(**changes):
    obs = {"images": {"cam": np.zeros((4, 4, 3), np.uint8)}, "state": np.zeros(3, np.float32), "instruction": "go"}
    obs.update(changes)
    return obs


@pytest.mark.parametrize("obs, field", [
    ({"state": 1}, r"observation: missing key\(s\) \['images', 'instruction'\]"),
    (_obs(extra=1), r"unexpected key\(s\) \['extra'\]"),
    (_obs(images={"cam": np.zeros((4, 4, 3), np.uint8), "other": np.zeros((4, 4, 3), np.uint8)}),
     r"unknown camera\(s\) \['other'\]"),
    (_obs(images={"cam": np.zeros((4, 4, 3), np.float32)}), r"\['cam'\]: expected uint8 array of shape \[4, 4, 3\]"),
    (_obs(images={"cam": np.zeros((5, 4, 3), np.uint8)}), r"\['cam'\]: expected uint8"),
    (_obs(state=np.zeros(4, np.float32)), r"observation\['state'\]: expected a float array of shape \[3\]"),
    (_obs(state=np.array([0, np.nan, np.inf], np.float32)), r"non-finite value\(s\) at index \[1, 2\]"),
    (_obs(instruction=5), r"observation\['instruction'\]: expected a string"),
    (_obs(reset="yes"), r"observation\['reset'\]: expected a bool"),
    ([1, 2], "observation: expected a map"),
])
def test_schema_errors_name_the_field(obs, field):
    with pytest.raises(ObservationError, match=field):
        SPEC.validate(obs)


def test_schema_accepts_openpi_prompt_and_reset():
    obs = _obs(reset=True)
    obs["prompt"] = obs.pop("instruction")
    out = SPEC.validate(obs)
    assert out["instruction"] == "go" and out["reset"] is True and out["state"].dtype == np.float32
