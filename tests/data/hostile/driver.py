"""Run corpus cases in subprocesses under a memory limit: ``python -m tests.data.hostile.driver CASES OUT``.

The driver imports the CLI once, then forks one child per case (the fork is the case's process): the
child sets ``RLIMIT_AS`` (a backstop) and an alarm, runs the case's commands one after the other as
``vla <args>`` would (``vla.cli.app``), with file descriptors 1 and 2 captured per command, and reports
each command's exit code and output. The parent reads the child's peak RSS from ``wait4`` and its wall
time. An exception escaping a command is recorded as a traceback (the failure the corpus looks for).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

AS_LIMIT = int(os.environ.get("VLA_HOSTILE_AS_LIMIT", 6 << 30))  # bytes of address space per case
TIMEOUT = int(os.environ.get("VLA_HOSTILE_TIMEOUT", 120))  # seconds per case


def _run_command(args: list[str]) -> dict[str, Any]:
    from vla.cli import app

    out = tempfile.TemporaryFile()
    saved = os.dup(1), os.dup(2)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    t0 = time.perf_counter()
    rc: Any
    try:
        app(args, prog_name="vla", standalone_mode=True)
        rc = 0
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - an escaping exception is exactly what is being measured
        traceback.print_exc()
        rc = "traceback"
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
    out.seek(0)
    text = out.read().decode("utf-8", "replace")
    return {"args": args, "rc": rc, "output": text[-4000:], "seconds": round(time.perf_counter() - t0, 3),
            "error_lines": [ln for ln in text.splitlines() if ln.startswith("error:")],
            "traceback": "Traceback (most recent call last)" in text or rc == "traceback"}


def _child(case: dict[str, Any], w: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    import signal

    signal.alarm(TIMEOUT)
    os.chdir(case["root"])
    results = []
    for cmd in case["commands"]:
        if cmd.get("if_exists") and not Path(cmd["if_exists"]).exists():
            continue
        results.append({"name": cmd["name"], "expect": cmd["expect"], **_run_command(cmd["args"])})
    os.write(w, json.dumps(results).encode())


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """Fork, run the case in the child, return its command results, peak RSS (MB) and wall time."""
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            _child(case, w)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            code = 3
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - t0
    try:
        commands = json.loads(b"".join(chunks) or b"[]")
    except json.JSONDecodeError:
        commands = []
    killed = os.WIFSIGNALED(status)
    return {"name": case["name"], "commands": commands, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "seconds": round(seconds, 2), "killed": killed,
            "signal": os.WTERMSIG(status) if killed else None,
            "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}


def main(cases_path: str, out_path: str) -> None:
    import vla.cli  # noqa: F401 - imported once, shared by every forked case
    import vla.data.audit.runner  # noqa: F401
    import vla.data.formats.convert  # noqa: F401
    import vla.data.viewer.page  # noqa: F401

    cases = json.loads(Path(cases_path).read_text())
    results = [run_case(c) for c in cases]
    Path(out_path).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
