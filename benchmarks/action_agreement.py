"""Diagnose a trained policy: does each action dimension follow the expert on the expert's own states?

The scripted expert drives the episode; every ``--every`` steps the policy is asked for a chunk on
the current observation and its first action is compared with the expert's action for the same
state. Per task and action dimension: the mean absolute error, the correlation over all queries
(``corr``: also rewards following the usual time course of a demo) and the correlation across
scenes at the same step (``scene_corr``: per-step means removed, so 1 = the policy reads what makes
this scene's action differ from the others', e.g. where the goal is, ~0 = it ignores it). Failure in closed loop
often starts with one dimension the policy never learned (MetaWorld reach: forward motion toward
the goal), which success rates alone do not show. Evaluation seeds of run seed ``--seed``, so the
scenes are never collection scenes. Writes JSON (default benchmarks/results/action_agreement.json).

    MUJOCO_GL=egl OMP_NUM_THREADS=1 python benchmarks/action_agreement.py --policy RUN/policy \
        --tasks reach-v3,push-v3 --scenes 12
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result  # noqa: E402
from vla.models import Policy  # noqa: E402
from vla.sim import MetaWorldEnv  # noqa: E402
from vla.sim.seeds import evaluation_seed  # noqa: E402
from vla.sim.suites import mt10_tasks, mt50_tasks  # noqa: E402

DIMS = ["dx", "dy", "dz", "gripper"]


def _corr(x: np.ndarray, y: np.ndarray) -> float | None:
    return float(np.corrcoef(x, y)[0, 1]) if len(x) > 2 and x.std() > 1e-9 and y.std() > 1e-9 else None


def task_agreement(policy: Policy, task: str, scenes: int, every: int, seed: int, max_steps: int) -> dict:
    cfg = policy.config
    env = MetaWorldEnv(task, cameras=tuple(cfg.cameras), image_size=cfg.image_size, max_steps=max_steps)
    pred, expert, steps = [], [], []
    try:
        for ep in range(scenes):
            obs, _ = env.reset(seed=evaluation_seed(seed, mt50_tasks().index(task), ep))
            for step in range(max_steps):
                a = env.expert_action()
                if step % every == 0:
                    with torch.no_grad():
                        chunk = np.asarray(policy.predict_chunk(obs))
                    pred.append(chunk[0])
                    expert.append(a)
                    steps.append(step)
                obs, _, _, truncated, info = env.step(a)
                if info["success"] or truncated:
                    break
    finally:
        env.close()
    p, e, at = np.array(pred), np.array(expert), np.array(steps)
    # the same queries with each step's mean over scenes removed (steps seen in >= 3 scenes)
    keep = np.isin(at, [s for s in np.unique(at) if (at == s).sum() >= 3])
    pr, er = p[keep].copy(), e[keep].copy()
    for s in np.unique(at[keep]):
        m = at[keep] == s
        pr[m] -= pr[m].mean(axis=0)
        er[m] -= er[m].mean(axis=0)
    dims = {}
    for j in range(p.shape[1]):
        name = DIMS[j] if j < len(DIMS) else str(j)
        dims[name] = {"corr": _corr(p[:, j], e[:, j]), "scene_corr": _corr(pr[:, j], er[:, j]),
                      "mae": float(np.abs(p[:, j] - e[:, j]).mean()), "expert_std": float(e[:, j].std())}
    return {"queries": len(p), "dims": dims}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", type=Path, required=True, help="a saved policy folder")
    ap.add_argument("--tasks", default="", help="comma-separated MetaWorld tasks (default: MT10)")
    ap.add_argument("--scenes", type=int, default=12)
    ap.add_argument("--every", type=int, default=5, help="query the policy every N expert steps")
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7, help="run seed of the evaluation scenes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "action_agreement.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    policy = Policy.from_pretrained(args.policy)
    policy.eval()
    tasks = [t for t in args.tasks.split(",") if t] or mt10_tasks()
    t0 = time.perf_counter()
    result = {
        "policy": str(args.policy), "settings": {"scenes": args.scenes, "every": args.every, "seed": args.seed,
                                                  "max_steps": args.max_steps},
        "tasks": {t: task_agreement(policy, t, args.scenes, args.every, args.seed, args.max_steps) for t in tasks},
    }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["machine"] = machine_info()
    write_result(args.out, result)


if __name__ == "__main__":
    main()
