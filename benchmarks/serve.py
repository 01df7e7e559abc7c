"""Benchmark `vla serve`: round trip per chunk over loopback beside in-process ``predict_chunk``, same run.

Starts `vla serve` in its own process (one torch thread), loads the same policy in this process (one torch
thread), and alternates blocks of in-process calls and round trips on the same observations, so both see the
same machine load. Transport overhead is reported two ways: round-trip percentile minus in-process
percentile, and per call (round trip minus the server's own inference time for that call: websocket,
msgpack, validation, the worker-thread hop). Then throughput with 1 and with N concurrent clients (each its
own process). Beside the overhead, the floor: the same bytes over a plain loopback TCP socket to a process that
holds each request as long as the model took. Writes JSON (default benchmarks/results/serve.json).

    OMP_NUM_THREADS=1 python benchmarks/serve.py [--policy RUN] [--calls 10000] [--clients 4]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result  # noqa: E402
from _serving import free_port, save_random_default_policy, wait_healthy  # noqa: E402


def _observation(cameras: list[str], size: int, state_dim: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"images": {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in cameras},
            "state": rng.normal(size=state_dim).astype(np.float32), "instruction": "push the puck to the goal"}


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q))


def _floor_server(port_q: mp.Queue, reply_bytes: int) -> None:
    """Plain TCP peer: read [u32 length][f64 hold seconds][payload], busy-wait the hold, send reply_bytes."""
    import socket
    import struct

    ls = socket.create_server(("127.0.0.1", 0))
    port_q.put(ls.getsockname()[1])
    conn, _ = ls.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
    reply = b"r" * reply_bytes
    buf = bytearray()
    while True:
        while len(buf) < 12:
            data = conn.recv(1 << 20)
            if not data:
                return
            buf += data
        n, hold = struct.unpack("<Id", buf[:12])
        while len(buf) < 12 + n:
            data = conn.recv(1 << 20)
            if not data:
                return
            buf += data
        del buf[:12 + n]
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < hold:  # a busy core, as inference keeps one busy
            pass
        conn.sendall(reply)


class _TcpFloor:
    """The same request and reply sizes over a plain loopback TCP socket to another process that holds each
    request as long as the model took: what any transport costs on this machine (no websocket, no msgpack)."""

    def __init__(self, request_bytes: int, reply_bytes: int) -> None:
        import socket

        ctx = mp.get_context("spawn")
        q: mp.Queue = ctx.Queue()
        self.proc = ctx.Process(target=_floor_server, args=(q, reply_bytes), daemon=True)
        self.proc.start()
        self.sock = socket.create_connection(("127.0.0.1", q.get(timeout=60)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.payload, self.reply_bytes = b"q" * request_bytes, reply_bytes

    def call(self, hold_s: float) -> float:
        """Round trip minus the hold, in seconds."""
        import struct

        t0 = time.perf_counter()
        self.sock.sendall(struct.pack("<Id", len(self.payload), hold_s) + self.payload)
        got = 0
        while got < self.reply_bytes:
            got += len(self.sock.recv(1 << 20))
        return time.perf_counter() - t0 - hold_s

    def close(self) -> None:
        self.sock.close()
        self.proc.join(timeout=10)


def _client_worker(url: str, calls: int, obs_seed: int, out: mp.Queue) -> None:
    from vla.serve.client import PolicyClient

    with PolicyClient(url, timeout_s=60) as client:
        c = client.metadata
        obs = _observation(list(c["cameras"]), next(iter(c["cameras"].values()))[0], c["state_dim"], obs_seed)
        client.infer(obs)
        t0 = time.perf_counter()
        for _ in range(calls):
            client.infer(obs)
        out.put(time.perf_counter() - t0)


def _throughput(url: str, clients: int, calls: int) -> dict:
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_client_worker, args=(url, calls, i, q)) for i in range(clients)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    times = [q.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    wall = time.perf_counter() - t0
    return {"clients": clients, "calls_per_client": calls, "chunks_per_s": clients * calls / max(times),
            "slowest_client_s": max(times), "wall_s_incl_start": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", type=Path, help="policy or run folder (default: the default config, random weights)")
    ap.add_argument("--calls", type=int, default=10000, help="round trips (and as many in-process calls)")
    ap.add_argument("--block", type=int, default=500, help="calls per alternating block")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--throughput-calls", type=int, default=500, help="calls per client in the throughput runs")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve.json")
    args = ap.parse_args()

    import torch

    from vla.models import Policy
    from vla.models.serialization import resolve_policy_dir
    from vla.serve.client import PolicyClient

    torch.set_num_threads(1)
    tmp = tempfile.TemporaryDirectory()
    if args.policy:
        policy_dir = resolve_policy_dir(args.policy)
    else:
        policy_dir = save_random_default_policy(Path(tmp.name) / "policy")
    policy = Policy.from_pretrained(policy_dir)
    cfg = policy.config
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "vla.cli", "serve", "--policy", str(policy_dir), "--port",
                               str(port), "--threads", "1"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_healthy(server, port)
        url = f"ws://127.0.0.1:{port}"
        obs = _observation(list(cfg.cameras), cfg.image_size, cfg.state_dim, 0)
        client = PolicyClient(url, timeout_s=60)
        for _ in range(50):  # warm-up both paths
            policy.predict_chunk(obs)
            client.infer(obs)
        from vla.serve.wire import pack

        last_reply = client.infer(obs)
        request_bytes = len(pack({**obs, "reset": False}))
        reply_bytes = len(pack(last_reply))
        floor = _TcpFloor(request_bytes, reply_bytes)
        for _ in range(50):
            floor.call(0.01)
        local, remote, server_infer, server_total, server_decode, floor_over = [], [], [], [], [], []
        t_start = time.perf_counter()
        done = 0
        while done < args.calls:
            n = min(args.block, args.calls - done)
            for _ in range(n):
                t0 = time.perf_counter()
                policy.predict_chunk(obs)
                local.append(time.perf_counter() - t0)
            for _ in range(n):
                t0 = time.perf_counter()
                reply = client.infer(obs)
                remote.append(time.perf_counter() - t0)
                server_infer.append(reply["server_timing"]["infer_ms"] / 1e3)
                server_total.append(reply["server_timing"]["total_ms"] / 1e3)
                server_decode.append(reply["server_timing"]["decode_ms"] / 1e3)
            for hold in server_infer[-n:]:
                floor_over.append(floor.call(hold))
            done += n
            print(f"{done}/{args.calls} calls: in-process p50 {_pct(local, 50):.2f} ms, "
                  f"round trip p50 {_pct(remote, 50):.2f} ms", file=sys.stderr)
        latency_wall = time.perf_counter() - t_start
        paired = [r - s for r, s in zip(remote, server_infer, strict=True)]
        client.close()
        floor.close()
        through = [_throughput(url, 1, args.throughput_calls), _throughput(url, args.clients, args.throughput_calls)]
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read())
    finally:
        server.terminate()
        server.wait(timeout=30)
        tmp.cleanup()

    result = {
        "benchmark": "serve",
        "policy": {"path": str(args.policy) if args.policy else "default PolicyConfig, random weights",
                   "cameras": list(cfg.cameras), "image_size": cfg.image_size, "chunk": cfg.chunk,
                   "params": policy.num_parameters()},
        "settings": {"calls": args.calls, "block": args.block, "transport": "websocket over 127.0.0.1, msgpack-numpy",
                     "server": "vla serve, own process, 1 torch thread", "in_process": "this process, 1 torch thread"},
        "in_process_ms": {"p50": _pct(local, 50), "p99": _pct(local, 99), "mean": float(np.mean(local) * 1e3)},
        "round_trip_ms": {"p50": _pct(remote, 50), "p99": _pct(remote, 99), "mean": float(np.mean(remote) * 1e3)},
        "server_infer_ms": {"p50": _pct(server_infer, 50), "p99": _pct(server_infer, 99)},
        "server_decode_ms": {"p50": _pct(server_decode, 50), "p99": _pct(server_decode, 99),
                             "note": "msgpack decode + observation check on the server, part of the overhead"},
        "server_outside_inference_ms": {
            "p50": _pct([t - i for t, i in zip(server_total, server_infer, strict=True)], 50),
            "p99": _pct([t - i for t, i in zip(server_total, server_infer, strict=True)], 99),
            "note": "server total_ms minus infer_ms: decode, check, model lock, reply packing"},
        "overhead_ms": {
            "p50_difference": _pct(remote, 50) - _pct(local, 50),
            "p99_difference": _pct(remote, 99) - _pct(local, 99),
            "per_call_p50": _pct(paired, 50), "per_call_p99": _pct(paired, 99),
            "note": "difference = round-trip percentile minus in-process percentile; per_call = each round trip "
                    "minus the server's inference time for that call",
        },
        "tcp_floor_ms": {
            "p50": _pct(floor_over, 50), "p99": _pct(floor_over, 99),
            "request_bytes": request_bytes, "reply_bytes": reply_bytes,
            "note": "plain loopback TCP to another process holding each request as long as the server's inference "
                    "took (busy core), same byte counts, interleaved with the blocks above: the cost of any "
                    "transport on this machine, the floor under the overhead figures",
        },
        "targets": {"overhead_p50_ms": 1.0, "overhead_p99_ms": 3.0},
        "throughput": through,
        "server_health_after": health,
        "latency_phase_wall_s": latency_wall,
        "machine": machine_info(),
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
