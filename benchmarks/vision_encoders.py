"""Benchmark the policy's vision encoders: parameters, training samples/s, inference latency per chunk.

Variants (the default policy otherwise: 2 cameras at 128 px, d_model 128, regression head):
conv (the default encoder), EfficientNet-Lite0 frozen at output stride 16 and 32, and fine-tuned at
stride 16 (vision_frozen=false). For each: trainable / total parameters; training samples/s at batch
``--batch`` (forward + backward + AdamW step of the whole policy in train mode, random uint8 frames, so
augmentation runs too); the time of the vision encoder's forward alone on the same batch (what a
per-frame feature cache would save for a frozen trunk); predict_chunk latency p50/p99 for one
observation. Variants are timed in turn, one step each per round, so load from other jobs falls on all
alike; the load average at start and end is recorded (on a shared machine the figures are relative).
JSON to stdout and --out (default benchmarks/results/vision_encoders.json).

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/vision_encoders.py [--steps 8] [--iters 60] [--variants a,b]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result  # noqa: E402
from vla.models import NormalizationStats, Policy, PolicyConfig  # noqa: E402
from vla.train.optim import adamw  # noqa: E402

EFFNET = {"vision_encoder": "efficientnet_lite0"}
VARIANTS: dict[str, dict[str, Any]] = {
    "conv": {},
    "efficientnet_lite0-frozen-s16": {**EFFNET, "vision_feature_stride": 16},
    "efficientnet_lite0-frozen-s32": {**EFFNET, "vision_feature_stride": 32},
    "efficientnet_lite0-finetune-s16": {**EFFNET, "vision_feature_stride": 16, "vision_frozen": False},
}


def _policy(changes: dict[str, Any]) -> Policy:
    cfg = PolicyConfig(**changes)
    rng = np.random.default_rng(0)
    stats = NormalizationStats.from_arrays(rng.normal(size=(100, cfg.state_dim)),
                                           rng.uniform(-1, 1, (100, cfg.action_dim)))
    torch.manual_seed(0)
    return Policy(cfg, stats)


def _batch(cfg: PolicyConfig, b: int, g: torch.Generator) -> dict[str, Any]:
    s = cfg.image_size
    return {"images": {c: torch.randint(0, 256, (b, s, s, 3), dtype=torch.uint8, generator=g) for c in cfg.cameras},
            "state": torch.randn(b, cfg.state_dim, generator=g),
            "instruction": [f"task {i % 10}" for i in range(b)],
            "action": torch.rand(b, cfg.chunk, cfg.action_dim, generator=g) * 2 - 1}


def _obs(cfg: PolicyConfig, rng: np.random.Generator) -> dict[str, Any]:
    s = cfg.image_size
    return {"images": {c: rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for c in cfg.cameras},
            "state": rng.normal(size=cfg.state_dim).astype(np.float32), "instruction": "open the drawer"}


def _timed(fn) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", help=f"comma-separated subset of {list(VARIANTS)}")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8, help="timed training steps per variant (after 2 warm-up)")
    ap.add_argument("--iters", type=int, default=60, help="timed predict_chunk calls per variant (after 5 warm-up)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "vision_encoders.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = args.variants.split(",") if args.variants else list(VARIANTS)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; known: {list(VARIANTS)}")
    load_start = list(os.getloadavg())
    policies = {name: _policy(VARIANTS[name]) for name in names}
    optims = {name: adamw(p, 3e-4, 0.01, tuple(p.pretrained_prefixes()), 0.1) for name, p in policies.items()}
    g = torch.Generator().manual_seed(0)

    def train_step(name: str) -> None:
        policy, opt = policies[name], optims[name]
        policy.train()
        loss = policy(_batch(policy.config, args.batch, g))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def vision_forward(name: str) -> None:
        policy = policies[name]
        cfg = policy.config
        policy.train()
        pixels = torch.rand(args.batch * len(cfg.cameras), 3, cfg.image_size, cfg.image_size, generator=g)
        enc = policy.vision[0]
        with torch.no_grad():
            if cfg.vision_encoder == "efficientnet_lite0":
                enc.features(pixels)  # the frozen trunk alone: what a feature cache would skip
            else:
                enc(pixels, None)

    step = {n: [] for n in names}
    vision = {n: [] for n in names}
    for _ in range(2):
        for n in names:
            train_step(n)
    for _ in range(args.steps):
        for n in names:
            step[n].append(_timed(lambda n=n: train_step(n)))
            vision[n].append(_timed(lambda n=n: vision_forward(n)))

    rng = np.random.default_rng(1)
    lat = {n: [] for n in names}
    for n in names:
        policies[n].eval()
        for _ in range(5):
            policies[n].predict_chunk(_obs(policies[n].config, rng))
    for _ in range(args.iters):
        for n in names:
            obs = _obs(policies[n].config, rng)
            lat[n].append(_timed(lambda n=n, obs=obs: policies[n].predict_chunk(obs)))

    variants = {}
    for n in names:
        p = policies[n]
        wall = np.array([w for w, _ in step[n]])
        cpu = np.array([c for _, c in step[n]])
        vis_wall = float(np.median([w for w, _ in vision[n]]))
        ms = np.array([w for w, _ in lat[n]]) * 1e3
        cpu_ms = np.array([c for _, c in lat[n]]) * 1e3
        step_med = float(np.median(wall))
        variants[n] = {
            "changes": VARIANTS[n],
            "params_total": p.num_parameters(), "params_trainable": p.num_parameters(trainable_only=True),
            "vision_tokens_per_camera": p.vision[0].num_tokens,
            "train_samples_per_s": args.batch / step_med,
            "train_samples_per_cpu_s": args.batch / float(np.median(cpu)),
            "train_step_s": {"median": step_med, "min": float(wall.min()), "max": float(wall.max())},
            "vision_forward_no_grad_s": vis_wall,
            "vision_forward_share_of_step": vis_wall / step_med,
            "chunk_ms": {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
                         "mean": float(ms.mean())},
            "chunk_cpu_ms": {"p50": float(np.percentile(cpu_ms, 50)), "p99": float(np.percentile(cpu_ms, 99))},
        }
    result = {
        "benchmark": "vision encoders: params, training samples/s, predict_chunk latency",
        "command": " ".join(["OMP_NUM_THREADS=1 nice -n 19 python benchmarks/vision_encoders.py", *sys.argv[1:]]),
        "settings": {"batch": args.batch, "cameras": PolicyConfig().cameras, "image_size": PolicyConfig().image_size,
                     "threads": args.threads, "train_steps_timed": args.steps, "latency_iters": args.iters,
                     "train_step": "forward + backward + AdamW step of the whole policy, train mode (random_shift on)",
                     "vision_forward": "the encoder's forward alone, no grad, same batch (EfficientNet: trunk only)"},
        "loadavg_start_1_5_15": load_start, "loadavg_end_1_5_15": list(os.getloadavg()),
        "variants": variants,
        "machine": machine_info(),
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
