"""Head-to-head comparison of the four action heads on MetaWorld MT10 (issue 12).

The same trunk (the default policy), the same dataset, the same training budget (steps x batch) and the
same evaluation seeds for each head; per head: success on train and held-out instructions (overall and per
task, with 95% Wilson intervals), per-chunk latency p50/p99 on one CPU thread (the trained policies timed
in turn in one process, `latency.time_policies`), and training samples/s two ways: as each run logged it
(2 processes; runs at different times see different load from other jobs) and measured in one process,
one thread, the heads' training steps interleaved (``interleaved_throughput``), which compares them fairly.

Each stage runs the `vla` command line in a subprocess and is skipped when its output exists, so an
interrupted benchmark continues where it stopped:

    python benchmarks/heads.py --dataset /work/data/mt10_20 --collect-episodes 20 --runs /work/runs/heads \\
        --steps 2000 [--heads regression,bins,diffusion,flow] [--eval-episodes 10] [--nproc 2]

With ``--collect-episodes N`` a missing dataset is collected first (`vla collect metaworld --suite mt10`).
Writes benchmarks/results/heads.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result  # noqa: E402
from _stages import run_logged as _run  # noqa: E402
from latency import time_policies  # noqa: E402
from vla.eval.metrics import wilson_interval  # noqa: E402
from vla.models import Policy  # noqa: E402

HEADS = ("regression", "bins", "diffusion", "flow")


def _stage(times: dict[str, Any], key: str, done: bool, cmd: list[str], log: Path) -> None:
    if done:
        times.setdefault(key, None)  # made by an earlier invocation: its time is in that run's log
        return
    times[key] = round(_run(cmd, log), 1)


def _split_result(report: dict[str, Any]) -> dict[str, Any]:
    k = sum(t["successes"] for t in report["tasks"].values())
    n = sum(t["episodes"] for t in report["tasks"].values())
    return {"success_rate": report["success_rate"], "ci95": list(wilson_interval(k, n)), "episodes": n,
            "tasks": {name: t["success_rate"] for name, t in report["tasks"].items()},
            "eval_wall_s": round(report["wall_time_s"], 1), "chunk_ms_in_eval": report.get("latency_ms")}


def interleaved_throughput(policies: dict[str, Policy], cache, batch_size: int, rounds: int, steps: int,
                           seed: int = 0) -> dict[str, dict[str, float]]:
    """Training samples/s of each policy (forward, backward, AdamW step) on the same batches, one thread, the
    policies taking turns for ``steps`` steps each over ``rounds`` rounds; wall and this thread's CPU time."""
    from vla.train.sampler import BatchSampler

    first = next(iter(policies.values())).config
    sampler = BatchSampler(cache, batch_size, first.chunk, first.cameras, seed)
    batches = [sampler.batch(i) for i in range(steps)]
    optims = {h: torch.optim.AdamW(p.parameters(), lr=1e-4) for h, p in policies.items()}
    wall = dict.fromkeys(policies, 0.0)
    cpu = dict.fromkeys(policies, 0.0)
    for p in policies.values():
        p.train()
    for r in range(rounds + 1):  # round 0 warms up and is not counted
        for head, policy in policies.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            for batch in batches:
                loss = policy(batch)["loss"]
                optims[head].zero_grad(set_to_none=True)
                loss.backward()
                optims[head].step()
            if r:
                wall[head] += time.perf_counter() - t0
                cpu[head] += time.thread_time() - c0
    n = rounds * steps * batch_size
    return {h: {"samples_per_s": n / wall[h], "samples_per_cpu_s": n / cpu[h]} for h in policies}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--collect-episodes", type=int, default=None,
                    help="collect this many demos per MT10 task into --dataset if it is missing")
    ap.add_argument("--runs", type=Path, required=True, help="folder for one training run per head")
    ap.add_argument("--heads", default=",".join(HEADS))
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32, help="per process")
    ap.add_argument("--nproc", type=int, default=2, help="training processes (torchrun)")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", type=Path, default=None, help="shared image cache (default RUNS/cache)")
    ap.add_argument("--latency-iters", type=int, default=200)
    ap.add_argument("--throughput-rounds", type=int, default=5)
    ap.add_argument("--throughput-steps", type=int, default=10, help="steps per head per round (batch 64)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "heads.json")
    args = ap.parse_args()
    heads = args.heads.split(",")
    unknown = sorted(set(heads) - set(HEADS))
    if unknown:
        raise SystemExit(f"--heads: unknown {unknown}; known: {list(HEADS)}")
    args.runs.mkdir(parents=True, exist_ok=True)
    log = args.runs / "heads_log.txt"
    cache = args.cache_dir or args.runs / "cache"
    vla = [sys.executable, "-m", "vla.cli"]
    times: dict[str, Any] = {}
    # stage times of an earlier invocation (whose outputs this one reuses) come from its JSON
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if previous.get("settings", {}).get("dataset") != str(args.dataset):
        previous = {}

    if not (args.dataset / "meta" / "info.json").is_file():
        if args.collect_episodes is None:
            raise SystemExit(f"{args.dataset}: no dataset there; pass --collect-episodes N to collect one")
        _stage(times, "collect_s", False,
               [*vla, "collect", "metaworld", "--suite", "mt10", "--episodes-per-task", str(args.collect_episodes),
                "--workers", str(args.workers), "--seed", str(args.seed), "--out", str(args.dataset)], log)

    results: dict[str, Any] = {}
    for head in heads:
        run = args.runs / head
        t: dict[str, Any] = {}
        train = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc),
                 "-m", "vla.train", "--dataset", str(args.dataset), "--out", str(run), f"steps={args.steps}",
                 f"batch_size={args.batch_size}", f"cache_dir={cache}", f"seed={args.seed}", f"policy.head={head}"]
        _stage(t, "train_s", (run / "policy" / "model.safetensors").is_file(), train, log)
        splits = {}
        for split in ("train", "heldout"):
            out = run / f"eval_{split}"
            _stage(t, f"eval_{split}_s", (out / "report.json").is_file(),
                   [*vla, "eval", "--policy", str(run), "--suite", "mt10", "--episodes-per-task",
                    str(args.eval_episodes), "--split", split, "--workers", str(args.workers), "--max-steps",
                    str(args.max_steps), "--seed", str(args.seed), "--out", str(out)], log)
            splits[split] = _split_result(json.loads((out / "report.json").read_text()))
        earlier = previous.get("heads", {}).get(head, {}).get("stage_s", {})
        t = {k: earlier.get(k) if v is None else v for k, v in t.items()}
        summary = json.loads((run / "summary.json").read_text())
        results[head] = {"train": splits["train"], "heldout": splits["heldout"],
                         "samples_per_s": summary.get("samples_per_s_after_first_epoch"),
                         "train_wall_s": summary.get("wall_s"), "params": summary.get("params"), "stage_s": t}

    torch.set_num_threads(1)
    policies = {head: Policy.from_pretrained(args.runs / head / "policy") for head in heads}
    for head, timing in time_policies(policies, args.latency_iters, 20).items():
        policy = policies[head]
        results[head].update(head_options=policy.config.head_options,
                             head_params=sum(p.numel() for p in policy.head.parameters()), latency_1_thread=timing)
    from vla.train.cache import build_cache

    cfg0 = policies[heads[0]].config
    cache_t = build_cache(args.dataset, list(cfg0.cameras), cfg0.image_size, cache)
    for head, rate in interleaved_throughput(policies, cache_t, 64, args.throughput_rounds,
                                             args.throughput_steps).items():
        results[head]["train_throughput_1_thread"] = rate
    best = max(heads, key=lambda h: (results[h]["train"]["success_rate"] + results[h]["heldout"]["success_rate"]))
    result = {
        "benchmark": "action heads head-to-head on MetaWorld MT10 (same trunk, data, steps, seeds)",
        "command": " ".join(["python", "benchmarks/heads.py", *sys.argv[1:]]),
        "settings": {"dataset": str(args.dataset), "steps": args.steps, "batch_size_per_process": args.batch_size,
                     "processes": args.nproc, "eval_episodes_per_task": args.eval_episodes,
                     "max_steps": args.max_steps, "seed": args.seed, "latency_iters": args.latency_iters,
                     "latency_threads": 1, "throughput": {"rounds": args.throughput_rounds,
                                                          "steps_per_round": args.throughput_steps,
                                                          "batch_size": 64, "threads": 1}},
        "stage_s": {**previous.get("stage_s", {}), **times},
        "heads": results,
        "best_by_mean_success": best,
        "machine": machine_info(),
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
