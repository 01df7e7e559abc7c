"""The watchdog with a real server process killed mid-episode: hold within one control period, and no
action computed before the kill runs after that period."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from vla.serve.client import PolicyClient
from vla.serve.executor import ChunkExecutor, ExecutorConfig

SERVER = """
import sys, numpy as np
from vla.serve.obs_schema import ObservationSpec
from vla.serve.server import PolicyServer
spec = ObservationSpec({"cam": (8, 8, 3)}, 4)
PolicyServer(lambda o: np.ones((8, 4), np.float32), {"chunk": 8, "n_action_steps": 8}, spec,
             port=int(sys.argv[1])).serve_forever()
"""
PERIOD = 0.02


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_killed_mid_episode_holds_within_one_control_period():
    port = _port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=os.environ.copy())
    try:
        client = None
        for _ in range(200):
            try:
                client = PolicyClient(f"ws://127.0.0.1:{port}", timeout_s=2, backoff_s=(0.01, 0.05))
                break
            except ConnectionError:
                time.sleep(0.05)
        assert client is not None, "server did not come up"
        obs = {"images": {"cam": np.zeros((8, 8, 3), np.uint8)}, "state": np.zeros(4, np.float32),
               "instruction": "go"}
        cfg = ExecutorConfig(mode="async", n_action_steps=8, threshold=2, control_period_s=PERIOD)
        hold = np.full(4, -7.0, np.float32)
        ex = ChunkExecutor(lambda o: client.infer(o)["actions"], lambda o, last: hold, cfg,
                           liveness=lambda: client.connected)
        records, kill_at = [], None
        next_tick = time.monotonic()
        for t in range(60):
            time.sleep(max(0.0, next_tick - time.monotonic()))
            next_tick += PERIOD
            if t == 25:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                kill_at = time.monotonic()
            records.append((time.monotonic(), ex.step(obs)))
        ex.close()
        before = [r for at, r in records if kill_at is None or at < kill_at]
        assert sum(r.kind == "chunk" for r in before) >= 15  # it was running on chunks before the kill
        after_period = [r for at, r in records if at >= kill_at + PERIOD]
        assert after_period and all(r.kind == "hold" and np.array_equal(r.action, hold) for r in after_period)
        assert any(r.watchdog and r.watchdog.startswith("source_error") for r in after_period)
    finally:
        if proc.poll() is None:
            proc.kill()
