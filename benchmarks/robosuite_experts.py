"""Benchmark the scripted robosuite experts: success per robot x task x controller, and frames/s.

Expert success runs without cameras (rendering is not needed to judge the expert); episode k of a
task uses collection seed k (``vla.sim.seeds.collection_seed(seed, task_index, k)``), the seeds
``vla collect robosuite`` uses. ``--collect-fps`` adds a timed collection with images (through
``collect_robosuite``: rendering, video encoding and writing included). The JSON is rewritten
after every cell, so an interrupted run keeps what it measured.

    MUJOCO_GL=egl OMP_NUM_THREADS=1 nice -n 19 python benchmarks/robosuite_experts.py \
        --robots Panda,Sawyer,UR5e,Kinova3,IIWA,XArm7,PandaOmron --tasks Lift,Stack,PickPlaceCan \
        --controllers osc --episodes 10 [--collect-fps] [--out benchmarks/results/robosuite_experts.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


def expert_cell(robot: str, task: str, controller: str, episodes: int, seed: int) -> dict:
    from vla.sim.robosuite.env import RobosuiteEnv
    from vla.sim.robosuite.tasks import task_index
    from vla.sim.rollout import run_expert_episode
    from vla.sim.seeds import collection_seed

    t0 = time.perf_counter()
    env = RobosuiteEnv(task, robot, controller=controller, cameras=())
    build_s = time.perf_counter() - t0
    ok, steps, success_steps, sim_s = 0, 0, [], 0.0
    try:
        for k in range(episodes):
            ep = run_expert_episode(env, collection_seed(seed, task_index(task), k), k, steps_after_success=0)
            ok += ep.success
            steps += ep.steps
            sim_s += ep.seconds
            if ep.success:
                success_steps.append(ep.success_step + 1)
    finally:
        env.close()
    return {"robot": robot, "task": task, "controller": controller, "episodes": episodes, "successes": ok,
            "success_rate": ok / episodes, "mean_steps_to_success": (sum(success_steps) / len(success_steps))
            if success_steps else None, "max_steps": env.max_steps, "env_build_s": round(build_s, 2),
            "steps_per_s_no_images": round(steps / sim_s, 1) if sim_s else None}


def collect_fps(robot: str, task: str, episodes: int, cameras: str, image_size: int, workers: int, seed: int) -> dict:
    from vla.sim.robosuite.collect import collect_robosuite

    tmp = Path(tempfile.mkdtemp(prefix="vla-rs-bench-"))
    try:
        summary = collect_robosuite([robot], [task], tmp / "out", episodes_per_task=episodes,
                                    cameras=tuple(c for c in cameras.split(",") if c), image_size=image_size,
                                    workers=workers, seed=seed, progress=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"command": f"vla collect robosuite --robots {robot} --tasks {task} --episodes-per-task {episodes} "
                       f"--cameras {cameras} --image-size {image_size} --workers {workers} --seed {seed}",
            "frames_per_s": summary["frames_per_s"], "rendered_images_per_s": summary["rendered_images_per_s"],
            "wall_time_s": summary["wall_time_s"], "frames": summary["frames"], "episodes": summary["episodes"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--robots", default="Panda,Sawyer,UR5e,Kinova3,IIWA,XArm7,PandaOmron")
    ap.add_argument("--tasks", default="Lift,Stack,PickPlaceCan")
    ap.add_argument("--controllers", default="osc")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--collect-fps", action="store_true", help="also time a collection with images")
    ap.add_argument("--collect-robot", default="Panda")
    ap.add_argument("--collect-task", default="Lift")
    ap.add_argument("--collect-episodes", type=int, default=4)
    ap.add_argument("--cameras", default="agentview,robot0_eye_in_hand")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--only-collect", action="store_true", help="skip the expert cells (keep those in --out)")
    ap.add_argument("--out", default="benchmarks/results/robosuite_experts.json")
    args = ap.parse_args()

    from vla.sim.robosuite._backend import robosuite_version

    out = Path(args.out)
    result = json.loads(out.read_text()) if args.only_collect and out.exists() else {
        "benchmark": "robosuite scripted experts", "robosuite": robosuite_version(), "seed": args.seed,
        "note": "success judged by robosuite's own _check_success; episodes use collection seeds; no images",
        "cells": []}
    result["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                         "loadavg_1_5_15_start": [round(x, 2) for x in os.getloadavg()],
                         "note": "CPUs shared with a training run; steps/s are under that load, niced"}

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, out)

    if not args.only_collect:
        for controller in args.controllers.split(","):
            for robot in args.robots.split(","):
                for task in args.tasks.split(","):
                    cell = expert_cell(robot, task, controller, args.episodes, args.seed)
                    result["cells"] = [c for c in result["cells"] if (c["robot"], c["task"], c["controller"])
                                       != (robot, task, controller)] + [cell]
                    save()
                    print(json.dumps(cell), flush=True)
    if args.collect_fps:
        result["collection"] = collect_fps(args.collect_robot, args.collect_task, args.collect_episodes,
                                           args.cameras, args.image_size, args.workers, args.seed)
        print(json.dumps(result["collection"]), flush=True)
    result["machine"]["loadavg_1_5_15_end"] = [round(x, 2) for x in os.getloadavg()]
    save()
    print("wrote", out)


if __name__ == "__main__":
    main()
