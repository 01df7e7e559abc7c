"""Benchmark policy inference: milliseconds per predicted chunk (predict_chunk on one observation).

Builds the default policy (or one from --config / key=value overrides) with random weights,
warms up, then times ``predict_chunk`` on fresh random observations: p50/p99 wall ms, and the
process CPU ms per chunk (robust to other jobs on a shared machine). Writes JSON to stdout and
to --out (default benchmarks/results/latency.json).

    OMP_NUM_THREADS=1 nice python benchmarks/latency.py [--threads 1] [--iters 200] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result  # noqa: E402
from vla.models import NormalizationStats, Policy, PolicyConfig  # noqa: E402
from vla.train.config import parse_value  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="PolicyConfig key=value settings")
    ap.add_argument("--config", type=Path, help="PolicyConfig JSON (default: the default config)")
    ap.add_argument("--policy", type=Path, help="a saved policy folder instead of random weights")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "latency.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.policy:
        policy = Policy.from_pretrained(args.policy)
    else:
        data = json.loads(args.config.read_text()) if args.config else {}
        for item in args.overrides:
            key, raw = item.split("=", 1)
            data[key] = parse_value(raw)
        cfg = PolicyConfig.from_dict(data)
        rng = np.random.default_rng(0)
        stats = NormalizationStats.from_arrays(rng.normal(size=(100, cfg.state_dim)),
                                               rng.uniform(-1, 1, (100, cfg.action_dim)))
        policy = Policy(cfg, stats)
    policy.eval()
    cfg = policy.config
    rng = np.random.default_rng(1)

    def observation() -> dict:
        return {"images": {c: rng.integers(0, 256, (cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
                           for c in cfg.cameras},
                "state": rng.normal(size=cfg.state_dim).astype(np.float32), "instruction": "open the drawer"}

    for _ in range(args.warmup):
        policy.predict_chunk(observation())
    wall, cpu = [], []
    for _ in range(args.iters):
        obs = observation()
        t0, c0 = time.perf_counter(), time.process_time()
        policy.predict_chunk(obs)
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    result = {
        "benchmark": "policy inference latency (predict_chunk, one observation)",
        "command": " ".join(["python", "benchmarks/latency.py", *sys.argv[1:]]),
        "settings": {"threads": args.threads, "iters": args.iters, "warmup": args.warmup,
                     "policy": str(args.policy) if args.policy else "random weights",
                     "config": cfg.to_dict(), "params": policy.num_parameters()},
        "chunk_ms": {"p50": float(np.percentile(wall, 50)), "p99": float(np.percentile(wall, 99)),
                     "mean": float(np.mean(wall))},
        "chunk_cpu_ms": {"p50": float(np.percentile(cpu, 50)), "p99": float(np.percentile(cpu, 99))},
        "target_p50_ms": 10.0,
        "machine": machine_info(),
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
