"""Benchmark stages run as `vla` commands in subprocesses, their output appended to one log file."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def run_logged(cmd: list[str], log: Path) -> float:
    """Run ``cmd`` with MUJOCO_GL=egl and its output appended to ``log``; its wall seconds (SystemExit on failure)."""
    print("+", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    with log.open("a") as fh:
        fh.write("+ " + " ".join(cmd) + "\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "MUJOCO_GL": "egl"}).returncode
    if rc:
        raise SystemExit(f"command failed (exit {rc}), see {log}: {' '.join(cmd)}")
    return round(time.perf_counter() - t0, 1)
