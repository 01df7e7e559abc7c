"""Does the shipped MetaWorld safety config get in the way of the scripted experts?

Runs the MetaWorld scripted experts over the MT10 tasks, N episodes per task (evaluation seeds of
run seed 0), once plain and once with every expert action passed through
``SafetyFilter(SafetyConfig.for_metaworld_sawyer())`` with the measured state. Writes success per
task both ways, steps to success, how many actions the filter modified and by which limit, and
the machine (default benchmarks/results/safety_experts.json). Expert success must not drop with
the filter on; if it does, the config is too tight.

    MUJOCO_GL=egl python benchmarks/safety_experts.py [--episodes-per-task 5] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result  # noqa: E402
from vla.serve.safety import SafetyConfig, SafetyFilter, summarize_reports  # noqa: E402
from vla.sim import MetaWorldEnv, make_suite  # noqa: E402
from vla.sim.seeds import evaluation_seed  # noqa: E402

# The env insists on one camera; the smallest image keeps rendering out of the way.
CAMERA, IMAGE_SIZE = "corner4", 16


def run_episode(env: MetaWorldEnv, seed: int, safety: SafetyFilter | None, max_steps: int):
    """One expert episode until the first success or ``max_steps``; returns (success, steps, reports)."""
    obs, _ = env.reset(seed=seed)
    if safety is not None:
        safety.reset()
    reports = []
    for step in range(max_steps):
        action = env.expert_action()
        if safety is not None:
            action, report = safety.filter(action, obs["state"])
            reports.append(report)
        obs, _, _, _, info = env.step(action)
        if info["success"]:
            return True, step + 1, reports
    return False, max_steps, reports


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes-per-task", type=int, default=5)
    ap.add_argument("--max-steps", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0, help="run seed of the evaluation seeds")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "safety_experts.json"))
    args = ap.parse_args(argv)

    cfg = SafetyConfig.for_metaworld_sawyer()
    suite = make_suite("mt10")
    t0 = time.perf_counter()
    tasks: dict[str, dict] = {}
    all_reports = []
    for task in suite.tasks:
        ti = suite.task_index(task)
        env = MetaWorldEnv(task, cameras=(CAMERA,), image_size=IMAGE_SIZE, max_steps=args.max_steps)
        row: dict[str, dict] = {}
        task_reports = []
        for mode in ("plain", "filtered"):
            safety = SafetyFilter(cfg) if mode == "filtered" else None
            successes, steps = [], []
            for ep in range(args.episodes_per_task):
                ok, n, reports = run_episode(env, evaluation_seed(args.seed, ti, ep), safety, args.max_steps)
                successes.append(ok)
                steps.append(n)
                task_reports += reports
            row[mode] = {"success": int(sum(successes)), "episodes": len(successes),
                         "success_rate": float(np.mean(successes)),
                         "mean_steps_to_success": (float(np.mean([s for s, o in zip(steps, successes, strict=True)
                                                                  if o])) if any(successes) else None)}
        env.close()
        row["filter"] = summarize_reports(task_reports)
        all_reports += task_reports
        tasks[task] = row
        print(f"{task:24s} plain {row['plain']['success']}/{args.episodes_per_task}  filtered "
              f"{row['filtered']['success']}/{args.episodes_per_task}  modified {row['filter']['modified']}"
              f"/{row['filter']['steps']}", file=sys.stderr, flush=True)

    plain = sum(r["plain"]["success"] for r in tasks.values())
    filtered = sum(r["filtered"]["success"] for r in tasks.values())
    total = sum(r["plain"]["episodes"] for r in tasks.values())
    result = {
        "benchmark": "safety_experts",
        "command": "MUJOCO_GL=egl python benchmarks/safety_experts.py " + " ".join(argv if argv is not None
                                                                                     else sys.argv[1:]),
        "suite": "mt10", "episodes_per_task": args.episodes_per_task, "max_steps": args.max_steps,
        "seeds": f"vla.sim.seeds.evaluation_seed({args.seed}, task_index, episode)",
        "safety_config": cfg.to_dict(),
        "success": {"plain": plain, "filtered": filtered, "episodes": total},
        "filter": summarize_reports(all_reports),
        "tasks": tasks,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": machine_info(),
    }
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
