"""Helpers shared by the serve benchmarks: a free loopback port, waiting for a server process's /healthz,
and the default policy with random weights saved to a folder."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, port: int, tries: int = 600) -> None:
    """Poll http://127.0.0.1:PORT/healthz until it answers; exit if the server process died first."""
    for _ in range(tries):
        if proc.poll() is not None:
            raise SystemExit(f"server process exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not answer /healthz")


def save_random_default_policy(folder: Path) -> Path:
    """The default PolicyConfig with seeded random weights (latency does not depend on training)."""
    import torch

    from vla.models import NormalizationStats, Policy, PolicyConfig

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    stats = NormalizationStats.from_arrays(rng.normal(size=(100, 4)), rng.uniform(-1, 1, size=(100, 4)))
    Policy(PolicyConfig(), stats).save(folder)
    return folder
