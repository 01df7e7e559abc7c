"""Fuzz `vla serve` with hostile messages and count what happens (JSON in benchmarks/results/serve_fuzz.json).

Starts `vla serve` (the default policy config with random weights, or --policy) in its own process, sends
``--messages`` frames drawn from tests/serve/hostile_messages.py (random bytes, truncated msgpack, wrong
types/shapes/dtypes, NaN/Inf, refused dtypes, pickle payloads, lying array headers, deep nesting, bad
UTF-8, ext types, text frames, extra keys, frames over the size limit) and, every ``--check-every`` frames,
one valid observation that must come back with actions. Counts per class: error replies, action replies,
expected closes (oversize: code 1009), unexpected closes; the server process must stay alive; its resident
memory is sampled throughout.

    OMP_NUM_THREADS=1 python benchmarks/serve_fuzz.py [--messages 100000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result  # noqa: E402
from _serving import free_port, save_random_default_policy, wait_healthy  # noqa: E402


def _rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":", 1)
            fields[k] = int(v.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", type=Path)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--check-every", type=int, default=1000)
    ap.add_argument("--max-message-mb", type=float, default=1.0, help="the server's size limit for this run")
    ap.add_argument("--oversize-rate", type=float, default=0.002)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_fuzz.json")
    args = ap.parse_args()

    from tests.serve.hostile_messages import OVERSIZE, hostile_message
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from vla.models import PolicyConfig
    from vla.models.serialization import resolve_policy_dir
    from vla.serve.wire import pack, unpack

    tmp = tempfile.TemporaryDirectory()
    if args.policy:
        policy_dir = resolve_policy_dir(args.policy)
    else:
        policy_dir = save_random_default_policy(Path(tmp.name) / "policy")
    cfg = PolicyConfig.load(policy_dir / "config.json")
    port = free_port()
    limit = int(args.max_message_mb * 1024 * 1024)
    server = subprocess.Popen([sys.executable, "-m", "vla.cli", "serve", "--policy", str(policy_dir), "--port",
                               str(port), "--max-message-mb", str(args.max_message_mb)],
                              env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    url = f"ws://127.0.0.1:{port}"
    rng = np.random.default_rng(args.seed)
    valid = {"images": {c: rng.integers(0, 256, (cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
                        for c in cfg.cameras},
             "state": rng.normal(size=cfg.state_dim).astype(np.float32), "instruction": "open the drawer"}
    per_class: dict[str, dict[str, int]] = {}
    checks = {"sent": 0, "answered": 0}
    rss: list[tuple[int, float, float]] = []

    def open_ws():
        ws = connect(url, compression=None, max_size=None, open_timeout=30, legacy=True)
        unpack(ws.recv(timeout=30))
        return ws

    try:
        wait_healthy(server, port)
        ws = open_ws()
        ws.send(pack(valid))
        unpack(ws.recv(timeout=30))
        rss.append((0, *_rss_mb(server.pid)))
        t0 = time.perf_counter()
        for i in range(1, args.messages + 1):
            name, frame = hostile_message(rng, valid, oversize_bytes=limit, oversize_rate=args.oversize_rate)
            counts = per_class.setdefault(name, {"sent": 0, "error_reply": 0, "actions_reply": 0,
                                                 "expected_close": 0, "unexpected_close": 0})
            counts["sent"] += 1
            try:
                ws.send(frame)
                reply = ws.recv(timeout=60)
                counts["error_reply" if isinstance(reply, str) else "actions_reply"] += 1
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                counts["expected_close" if name == OVERSIZE and code == 1009 else "unexpected_close"] += 1
                ws = open_ws()
            if i % args.check_every == 0:
                checks["sent"] += 1
                ws.send(pack(valid))
                out = unpack(ws.recv(timeout=60))
                checks["answered"] += int(isinstance(out, dict) and out["actions"].shape == (cfg.chunk, cfg.action_dim))
            if i % 10_000 == 0:
                rss.append((i, *_rss_mb(server.pid)))
                print(f"{i}/{args.messages} messages, {time.perf_counter() - t0:.0f} s, "
                      f"server RSS {rss[-1][1]:.0f} MiB", file=sys.stderr)
        elapsed = time.perf_counter() - t0
        ws.send(pack(valid))
        final_ok = unpack(ws.recv(timeout=60))["actions"].shape == (cfg.chunk, cfg.action_dim)
        alive = server.poll() is None
        rss.append((args.messages, *_rss_mb(server.pid)))
    finally:
        server.terminate()
        server.wait(timeout=30)
        tmp.cleanup()
    unexpected = sum(c["unexpected_close"] for c in per_class.values())
    result = {
        "benchmark": "serve_fuzz",
        "messages": args.messages, "seconds": elapsed, "messages_per_s": args.messages / elapsed,
        "server_alive_after": alive, "valid_request_answered_after": bool(final_ok),
        "crashes": int(not alive) + unexpected,
        "periodic_valid_checks": checks,
        "per_class": per_class,
        "server_rss_mib": [{"after_messages": n, "rss": r, "peak": p} for n, r, p in rss],
        "settings": {"max_message_bytes": limit, "oversize_rate": args.oversize_rate, "seed": args.seed,
                     "policy": str(args.policy) if args.policy else "default PolicyConfig, random weights"},
        "machine": machine_info(),
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
