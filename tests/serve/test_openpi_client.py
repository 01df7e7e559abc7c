"""openpi's own client (openpi-client 0.1.2, unchanged) drives a served vla policy; so does `vla serve`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from tests.models.helpers import stats, tiny_config
from vla.models import Policy
from vla.serve.client import PolicyClient
from vla.serve.policy_service import load_policy_service
from vla.serve.server import PolicyServer

websocket_client_policy = pytest.importorskip("openpi_client.websocket_client_policy",
                                              reason="openpi-client is installed by scripts/setup.sh")


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served") / "policy"
    Policy(tiny_config(), stats()).save(folder)
    return folder


def _obs(size: int = 32) -> dict:
    rng = np.random.default_rng(0)
    return {"images": {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in ("corner4", "gripperPOV")},
            "state": rng.normal(size=4).astype(np.float32), "prompt": "open the drawer"}


def test_unchanged_openpi_client_gets_actions_of_the_right_shape(policy_dir):
    predict, spec, meta = load_policy_service(policy_dir)
    with PolicyServer(predict, meta, spec, port=0, api_key="k3y") as srv:
        client = websocket_client_policy.WebsocketClientPolicy(host="127.0.0.1", port=srv.port, api_key="k3y")
        server_meta = client.get_server_metadata()
        assert server_meta["chunk"] == 4 and server_meta["action_dim"] == 4
        assert server_meta["cameras"] == {"corner4": [32, 32, 3], "gripperPOV": [32, 32, 3]}
        out = client.infer(_obs())
        assert out["actions"].shape == (4, 4) and out["actions"].dtype == np.float32
        assert np.isfinite(out["actions"]).all() and "server_timing" in out
        # the same observation in-process gives the same actions (robot units)
        obs = _obs()
        obs["instruction"] = obs.pop("prompt")
        assert np.allclose(out["actions"], predict(obs), atol=1e-5)
        with pytest.raises(RuntimeError, match=r"observation\['state'\]"):
            client.infer({**_obs(), "state": np.zeros(7, np.float32)})
        assert client.infer(_obs())["actions"].shape == (4, 4)  # still usable after the error


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_vla_serve_command_end_to_end(policy_dir, tmp_path):
    port = _free_port()
    key = tmp_path / "key"
    key.write_text("abc123\n")
    proc = subprocess.Popen([sys.executable, "-m", "vla.cli", "serve", "--policy", str(policy_dir), "--port",
                             str(port), "--api-key-file", str(key), "--safety", "metaworld_sawyer"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read())
                break
            except OSError:
                time.sleep(0.3)
        assert health is not None, proc.stdout.read() if proc.poll() is not None else "server did not come up"
        assert health["model_loaded"] and health["protocol"] == "vla-serve/1"
        with PolicyClient(f"ws://127.0.0.1:{port}", api_key="abc123") as client:
            assert client.metadata["safety"]["name"] == "metaworld_sawyer"
            obs = _obs()
            obs["instruction"] = obs.pop("prompt")
            obs["state"] = np.array([0.0, 0.6, 0.2, 1.0], np.float32)
            reply = client.infer(obs)
            assert reply["actions"].shape == (4, 4) and "safety" in reply
    finally:
        proc.terminate()
        proc.wait(timeout=30)
