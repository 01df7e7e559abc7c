"""PolicyServer + PolicyClient over loopback: protocol, security, bad input, concurrency, timeouts."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request

import msgpack
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from vla.serve import server as server_mod
from vla.serve.client import AuthenticationFailed, PolicyClient, ProtocolMismatch, ServerTimeout, ServerUnavailable
from vla.serve.obs_schema import ObservationSpec
from vla.serve.server import PolicyServer, ServeError
from vla.serve.wire import pack, unpack

SPEC = ObservationSpec({"cam": (8, 8, 3)}, 4)


def obs(value: float = 1.0, **changes) -> dict:
    o = {"images": {"cam": np.full((8, 8, 3), 7, np.uint8)}, "state": np.full(4, value, np.float32),
         "instruction": "push the block"}
    o.update(changes)
    return o


class Model:
    """Stand-in policy: the chunk encodes the state so replies can be matched to requests."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.delay_s = delay_s

    def __call__(self, o: dict) -> np.ndarray:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        return np.tile(o["state"][None, :], (6, 1)) * 2.0


@pytest.fixture
def served():
    model = Model()
    srv = PolicyServer(model, {"policy": {"name": "fake", "head": "regression", "parameters": 0}}, SPEC, port=0,
                       api_key="s3cret").start()
    yield srv, model
    srv.stop()


def test_metadata_first_then_actions(served):
    srv, _ = served
    with PolicyClient(srv.url, api_key="s3cret") as client:
        meta = client.metadata
        assert meta["protocol"] == "vla-serve/1" and meta["cameras"] == {"cam": [8, 8, 3]} and meta["state_dim"] == 4
        assert "safety" in meta and meta["policy"]["name"] == "fake"
        reply = client.infer(obs(1.5))
        assert reply["actions"].dtype == np.float32 and reply["actions"].shape == (6, 4)
        assert np.allclose(reply["actions"], 3.0)
        assert set(reply["server_timing"]) >= {"infer_ms", "total_ms"}


def _raw(srv: PolicyServer):
    ws = connect(srv.url, additional_headers={"Authorization": "Api-Key s3cret"}, compression=None, max_size=None,
                 legacy=True)
    unpack(ws.recv(timeout=5))  # metadata
    return ws


@pytest.mark.parametrize("message, field", [
    (b"\xc1\xc1 not msgpack", "not valid msgpack"),
    ("a text frame", "expected a binary msgpack frame"),
    (pack({"images": {}, "state": np.zeros(4, np.float32)}), "missing key(s) ['instruction']"),
    (pack(obs(state=np.zeros(4, np.float64).astype(np.int8)[:3])), "observation['state']: expected a float array"),
    (pack(obs(state=np.array([0, np.nan, 0, 0], np.float32))), "non-finite"),
    (pack(obs(images={"cam": np.zeros((8, 8, 3), np.uint8), "zoom": np.zeros((8, 8, 3), np.uint8)})),
     "unknown camera(s) ['zoom']"),
    (pack(obs(images={"cam": np.zeros((8, 8, 3), np.float32)})), "observation['images']['cam']: expected uint8"),
    (msgpack.packb({"state": {b"__ndarray__": True, b"data": b"", b"dtype": "<f4", b"shape": [2**40]}}),
     "declared shape"),
    (msgpack.packb({"state": {b"__ndarray__": True, b"data": b"x" * 8, b"dtype": "|O", b"shape": [1]}}), "dtype"),
    (pack([1, 2, 3]), "observation: expected a map"),
])
def test_bad_input_gets_an_error_naming_the_field_and_the_connection_stays_usable(served, message, field):
    srv, model = served
    ws = _raw(srv)
    try:
        ws.send(message)
        reply = ws.recv(timeout=5)
        assert isinstance(reply, str) and reply.startswith("error: ") and field in reply
        assert model.calls == 0  # no inference on garbage
        ws.send(pack(obs(2.0)))
        good = unpack(ws.recv(timeout=5))
        assert np.allclose(good["actions"], 4.0) and model.calls == 1
    finally:
        ws.close()


@pytest.mark.parametrize("headers", [None, {"Authorization": "Api-Key wrong"}, {"Authorization": "s3cret"}])
def test_missing_or_wrong_key_gets_401_before_any_decoding(served, monkeypatch, headers):
    srv, model = served
    decoded = []
    monkeypatch.setattr(server_mod, "unpack", lambda *a, **k: decoded.append(a) or {})
    with pytest.raises(InvalidStatus) as info:
        connect(srv.url, additional_headers=headers, open_timeout=5, legacy=True)
    assert info.value.response.status_code == 401
    assert decoded == [] and model.calls == 0 and srv.health.connections == 0
    with pytest.raises(AuthenticationFailed):
        PolicyClient(srv.url, api_key="nope")


def test_non_loopback_bind_without_a_key_is_refused():
    for host in ("0.0.0.0", "192.0.2.1", "::"):
        with pytest.raises(ServeError, match="not a loopback address"):
            PolicyServer(Model(), {}, SPEC, host=host, port=0)
    PolicyServer(Model(), {}, SPEC, host="0.0.0.0", port=0, api_key="k")  # allowed with a key (not started)


def test_cli_refuses_non_loopback_bind_without_a_key(tmp_path):
    r = subprocess.run([sys.executable, "-m", "vla.cli", "serve", "--policy", str(tmp_path), "--host", "0.0.0.0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "API key" in lines[0] and "Traceback" not in r.stderr


def test_health_answers_while_a_slow_inference_runs():
    model = Model(delay_s=1.0)
    with PolicyServer(model, {"policy": {"name": "slow"}}, SPEC, port=0) as srv:
        client = PolicyClient(srv.url, timeout_s=5)
        t = threading.Thread(target=client.infer, args=(obs(),))
        t.start()
        time.sleep(0.1)
        t0 = time.perf_counter()
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/healthz", timeout=5).read())
        waited = time.perf_counter() - t0
        t.join()
        assert health["status"] == "ok" and health["model_loaded"] and health["protocol"] == "vla-serve/1"
        assert waited < 0.5, f"health check waited {waited:.2f} s behind inference"
        after = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/healthz", timeout=5).read())
        assert after["requests"] == 1 and after["last_inference_ms"] >= 900
        client.close()


def test_several_clients_at_once_get_their_own_answers(served):
    srv, _ = served
    errors: list[str] = []

    def run(i: int) -> None:
        with PolicyClient(srv.url, api_key="s3cret") as c:
            for k in range(25):
                v = float(i * 100 + k)
                a = c.infer(obs(v))["actions"]
                if not np.allclose(a, 2 * v):
                    errors.append(f"client {i} got {a[0, 0]} for {v}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and srv.health.requests == 100


def test_receive_timeout_then_reconnect():
    model = Model(delay_s=0.6)
    with PolicyServer(model, {}, SPEC, port=0) as srv:
        client = PolicyClient(srv.url, timeout_s=0.2, backoff_s=(0.01, 0.05))
        t0 = time.perf_counter()
        with pytest.raises(ServerTimeout):
            client.infer(obs())
        assert time.perf_counter() - t0 < 0.5
        model.delay_s = 0.0
        time.sleep(0.7)  # the late reply goes to the dropped connection, never to the next request
        assert np.allclose(client.infer(obs(3.0))["actions"], 6.0)
        client.close()


def test_idle_timeout_closes_the_connection_and_the_client_reconnects():
    with PolicyServer(Model(), {}, SPEC, port=0, idle_timeout_s=0.3) as srv:
        client = PolicyClient(srv.url, backoff_s=(0.01, 0.05))
        time.sleep(0.8)
        with pytest.raises(ServerUnavailable):
            client.infer(obs())
        time.sleep(0.1)
        assert np.allclose(client.infer(obs(1.0))["actions"], 2.0)
        client.close()


def test_oversize_message_closes_only_that_connection():
    with PolicyServer(Model(), {}, SPEC, port=0, max_message_bytes=4096) as srv:
        ws = connect(srv.url, max_size=None, legacy=True)
        ws.recv(timeout=5)
        ws.send(b"\x00" * 10_000)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        with PolicyClient(srv.url) as client:
            assert client.infer(obs(1.0))["actions"].shape == (6, 4)


def test_protocol_and_schema_mismatch_are_clear(served):
    srv, _ = served
    with pytest.raises(ProtocolMismatch, match="state_dim"):
        PolicyClient(srv.url, api_key="s3cret", expect={"state_dim": 7})
    srv.metadata["protocol"] = "vla-serve/2"
    with pytest.raises(ProtocolMismatch, match="vla-serve/2"):
        PolicyClient(srv.url, api_key="s3cret")


def test_client_checks_the_observation_before_sending(served):
    srv, model = served
    with PolicyClient(srv.url, api_key="s3cret") as client:
        with pytest.raises(ValueError, match=r"observation\['state'\]"):
            client.infer(obs(state=np.zeros(3, np.float32)))
    assert model.calls == 0


def test_client_does_not_import_torch():
    code = "import sys, vla.serve.client, vla.serve.wire; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_a_new_client_connects_and_pings_while_another_clients_inference_runs():
    model = Model(delay_s=1.0)
    with PolicyServer(model, {"policy": {"name": "slow"}}, SPEC, port=0) as srv:
        busy = PolicyClient(srv.url, timeout_s=5)
        t = threading.Thread(target=busy.infer, args=(obs(),))
        t.start()
        time.sleep(0.1)
        t0 = time.perf_counter()
        other = connect(srv.url, legacy=True)
        meta = unpack(other.recv(timeout=2))
        other.ping().wait(timeout=2)
        waited = time.perf_counter() - t0
        t.join()
        assert meta["protocol"] == "vla-serve/1" and waited < 0.5, f"waited {waited:.2f} s behind inference"
        other.close()
        busy.close()


def test_connections_beyond_the_limit_get_503_and_the_others_carry_on():
    with PolicyServer(Model(), {}, SPEC, port=0, max_connections=2) as srv:
        a, b = PolicyClient(srv.url), PolicyClient(srv.url)
        with pytest.raises(InvalidStatus) as refused:
            connect(srv.url, legacy=True)
        assert refused.value.response.status_code == 503
        assert np.allclose(a.infer(obs(2.0))["actions"], 4.0) and np.allclose(b.infer(obs(1.0))["actions"], 2.0)
        b.close()
        time.sleep(0.2)
        c = PolicyClient(srv.url)  # a freed slot is usable again
        assert np.allclose(c.infer(obs(3.0))["actions"], 6.0)
        a.close()
        c.close()


def test_each_connection_keeps_its_own_first_frame_for_context_cameras():
    """A policy with context cameras gets each connection's episode-first frame, renewed by reset=True."""
    def model(o: dict) -> np.ndarray:
        first = float(o["context_images"]["cam"].mean())  # the remembered first frame's value
        return np.full((6, 4), first, np.float32)

    srv = PolicyServer(model, {"policy": {"name": "ctx"}, "context_cameras": ["cam"]}, SPEC, port=0).start()
    try:
        def frame(v: int) -> dict:
            return obs(images={"cam": np.full((8, 8, 3), v, np.uint8)})

        with PolicyClient(srv.url) as a, PolicyClient(srv.url) as b:
            assert a.metadata["context_cameras"] == ["cam"]
            assert a.infer(frame(10))["actions"][0, 0] == 10  # a's first observation
            assert b.infer(frame(50))["actions"][0, 0] == 50  # b has its own
            assert a.infer(frame(20))["actions"][0, 0] == 10  # still a's first frame
            assert a.infer({**frame(30), "reset": True})["actions"][0, 0] == 30  # a new episode
            assert a.infer(frame(40))["actions"][0, 0] == 30
            assert b.infer(frame(60))["actions"][0, 0] == 50
    finally:
        srv.stop()
