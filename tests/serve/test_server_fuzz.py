"""Fuzz the server with hostile frames: it answers each with an error text, never runs inference on garbage,
never drops the connection (except for frames over the size limit), and serves a valid request afterwards.
The 100,000-message run is benchmarks/serve_fuzz.py."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.serve.hostile_messages import CLASSES, OVERSIZE, hostile_message
from vla.serve.obs_schema import ObservationSpec
from vla.serve.server import PolicyServer
from vla.serve.wire import pack, unpack

SPEC = ObservationSpec({"cam": (8, 8, 3)}, 4)
VALID = {"images": {"cam": np.full((8, 8, 3), 3, np.uint8)}, "state": np.ones(4, np.float32), "instruction": "go"}


class StrictModel:
    """Fails the test if it is ever handed an observation that is not the valid schema."""

    def __init__(self) -> None:
        self.bad: list[str] = []
        self.calls = 0

    def __call__(self, obs: dict) -> np.ndarray:
        self.calls += 1
        try:
            SPEC.validate({k: v for k, v in obs.items()})
        except ValueError as exc:
            self.bad.append(str(exc))
        return np.zeros((4, 4), np.float32) + obs["state"][:1]


def _connect(srv: PolicyServer):
    ws = connect(srv.url, compression=None, max_size=None, legacy=True)
    unpack(ws.recv(timeout=5))
    return ws


def test_two_thousand_hostile_frames():
    model = StrictModel()
    limit = 64 * 1024
    with PolicyServer(model, {}, SPEC, port=0, max_message_bytes=limit) as srv:
        rng = np.random.default_rng(0)
        ws = _connect(srv)
        seen: dict[str, int] = {}
        unexpected_closes = 0
        for i in range(2000):
            name, frame = hostile_message(rng, VALID, oversize_bytes=limit, oversize_rate=0.01)
            seen[name] = seen.get(name, 0) + 1
            try:
                ws.send(frame)
                reply = ws.recv(timeout=10)
            except ConnectionClosed as exc:
                if name != OVERSIZE or exc.rcvd is None or exc.rcvd.code != 1009:
                    unexpected_closes += 1
                ws = _connect(srv)
                continue
            if isinstance(reply, bytes):  # a frame that happened to be a valid observation
                assert unpack(reply)["actions"].shape == (4, 4)
            else:
                assert reply.startswith("error: "), reply
            if i % 250 == 0:
                ws.send(pack(VALID))
                assert unpack(ws.recv(timeout=10))["actions"].shape == (4, 4)
        assert unexpected_closes == 0
        assert model.bad == []
        assert set(seen) >= set(CLASSES), f"classes not drawn: {set(CLASSES) - set(seen)}"
        ws.send(pack(VALID))
        assert np.allclose(unpack(ws.recv(timeout=10))["actions"], 1.0)
        ws.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=20)
                    | st.binary(max_size=40),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=20))
def test_arbitrary_msgpack_trees_get_an_error_not_a_crash(tree):
    # one server for all examples (module-level), started lazily
    global _FUZZ_SERVER, _FUZZ_WS
    if _FUZZ_SERVER is None:
        _FUZZ_SERVER = PolicyServer(StrictModel(), {}, SPEC, port=0).start()
        _FUZZ_WS = _connect(_FUZZ_SERVER)
    _FUZZ_WS.send(msgpack_packb(tree))
    reply = _FUZZ_WS.recv(timeout=10)
    assert isinstance(reply, str) and reply.startswith("error: ")


def msgpack_packb(tree) -> bytes:
    import msgpack

    return msgpack.packb(tree, use_bin_type=True)


_FUZZ_SERVER: PolicyServer | None = None
_FUZZ_WS = None


def teardown_module(module) -> None:
    if _FUZZ_SERVER is not None:
        _FUZZ_SERVER.stop()
