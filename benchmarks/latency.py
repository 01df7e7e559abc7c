"""Benchmark policy inference per action head: milliseconds per predicted chunk (predict_chunk, one observation).

By default measures the default policy with each head at its default settings: regression, bins
(parallel and autoregressive decoding), diffusion (MLP and transformer denoisers, 10 DDIM steps) and
flow (10 Euler steps), with seeded random weights (latency does not depend on training). The variants
are timed in turn, one call each per round, so load from other jobs falls on all of them alike.
Reports p50/p99 wall ms and process CPU ms per chunk (robust to other jobs on a shared machine).
Writes JSON to stdout and to --out (default benchmarks/results/latency.json).

    OMP_NUM_THREADS=1 nice python benchmarks/latency.py [--threads 1] [--iters 200] [--variants flow,bins-parallel]
        [--config FILE] [key=value ...]      # PolicyConfig settings for every variant (head=... measures one)
    OMP_NUM_THREADS=1 nice python benchmarks/latency.py --policy RUN/policy    # a saved policy
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result  # noqa: E402
from vla.models import NormalizationStats, Policy, PolicyConfig  # noqa: E402
from vla.train.config import parse_value  # noqa: E402

# name: (head, head_options, target p50 ms from issue 12 or None)
VARIANTS: dict[str, tuple[str, dict[str, Any], float | None]] = {
    "regression": ("regression", {}, 5.0),
    "bins-parallel": ("bins", {}, 5.0),
    "bins-autoregressive": ("bins", {"decode": "autoregressive"}, None),
    "diffusion": ("diffusion", {}, 20.0),
    "diffusion-transformer": ("diffusion", {"denoiser": "transformer"}, None),
    "flow": ("flow", {}, 20.0),
}


def _random_policy(data: dict[str, Any]) -> Policy:
    cfg = PolicyConfig.from_dict(data)
    rng = np.random.default_rng(0)
    stats = NormalizationStats.from_arrays(rng.normal(size=(100, cfg.state_dim)),
                                           rng.uniform(-1, 1, (100, cfg.action_dim)))
    torch.manual_seed(0)
    return Policy(cfg, stats)


def _policies(args: argparse.Namespace) -> dict[str, tuple[Policy, float | None]]:
    if args.policy:
        return {"policy": (Policy.from_pretrained(args.policy), None)}
    base = json.loads(args.config.read_text()) if args.config else {}
    for item in args.overrides:
        key, raw = item.split("=", 1)
        base[key] = parse_value(raw)
    if "head" in base:
        return {base["head"]: (_random_policy(base), None)}
    names = args.variants.split(",") if args.variants else list(VARIANTS)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; known: {list(VARIANTS)}")
    out = {}
    for name in names:
        head, options, target = VARIANTS[name]
        out[name] = (_random_policy({**base, "head": head, "head_options": options}), target)
    return out


def time_policies(policies: dict[str, Policy], iters: int, warmup: int, seed: int = 1) -> dict[str, dict]:
    """Wall and process-CPU milliseconds per ``predict_chunk`` on one random observation, per policy; the
    policies are timed in turn (one call each per round), so load from other jobs falls on all alike."""
    rng = np.random.default_rng(seed)

    def observation(cfg: PolicyConfig) -> dict:
        return {"images": {c: rng.integers(0, 256, (cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
                           for c in cfg.cameras},
                "state": rng.normal(size=cfg.state_dim).astype(np.float32), "instruction": "open the drawer"}

    for policy in policies.values():
        policy.eval()
        for _ in range(warmup):
            policy.predict_chunk(observation(policy.config), seed=0)
    wall: dict[str, list[float]] = {name: [] for name in policies}
    cpu: dict[str, list[float]] = {name: [] for name in policies}
    for i in range(iters):  # round-robin: every variant sees the same load over the run
        for name, policy in policies.items():
            obs = observation(policy.config)
            t0, c0 = time.perf_counter(), time.process_time()
            policy.predict_chunk(obs, seed=i)
            wall[name].append((time.perf_counter() - t0) * 1e3)
            cpu[name].append((time.process_time() - c0) * 1e3)
    return {name: {"chunk_ms": {"p50": float(np.percentile(wall[name], 50)),
                                "p99": float(np.percentile(wall[name], 99)), "mean": float(np.mean(wall[name]))},
                   "chunk_cpu_ms": {"p50": float(np.percentile(cpu[name], 50)),
                                    "p99": float(np.percentile(cpu[name], 99))}}
            for name in policies}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="PolicyConfig key=value settings")
    ap.add_argument("--config", type=Path, help="PolicyConfig JSON (default: the default config)")
    ap.add_argument("--policy", type=Path, help="a saved policy folder instead of random weights")
    ap.add_argument("--variants", help=f"comma-separated subset of {list(VARIANTS)}")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "latency.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    policies = _policies(args)
    timings = time_policies({name: p for name, (p, _) in policies.items()}, args.iters, args.warmup)
    variants = {}
    for name, (policy, target) in policies.items():
        p50 = timings[name]["chunk_ms"]["p50"]
        variants[name] = {
            "head": policy.config.head, "head_options": policy.config.head_options,
            "params": policy.num_parameters(), "head_params": sum(p.numel() for p in policy.head.parameters()),
            **timings[name],
            "target_p50_ms": target, "meets_target": None if target is None else p50 <= target,
        }
    first = next(iter(policies.values()))[0]
    config = {k: v for k, v in first.config.to_dict().items() if k not in ("head", "head_options")}
    result = {
        "benchmark": "policy inference latency per action head (predict_chunk, one observation)",
        "command": " ".join(["python", "benchmarks/latency.py", *sys.argv[1:]]),
        "settings": {"threads": args.threads, "iters": args.iters, "warmup": args.warmup,
                     "policy": str(args.policy) if args.policy else "random weights", "trunk_config": config},
        "variants": variants,
        "machine": machine_info(),
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
