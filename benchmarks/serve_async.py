"""Asynchronous vs synchronous chunk execution with a slow served model, in real time, on MetaWorld.

Serves the policy from a child process whose every inference is delayed by ``--delay-ms`` (the injected
model delay), then drives MetaWorld episodes at ``--rate-hz`` in wall-clock time through PolicyClient and
ChunkExecutor: once in ``sync`` mode (ask for a chunk when the queue is empty and wait; the ticks missed
while waiting execute the hold action, so the world keeps its clock) and once in ``async`` mode (ask in the
background when the queue falls below the threshold). Reports per mode: success per task, idle frames
(after the first chunk), how old each executed action's observation was, late ticks. JSON in
benchmarks/results/serve_async.json.

    OMP_NUM_THREADS=1 python benchmarks/serve_async.py --policy RUN [--delay-ms 100] [--rate-hz 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result  # noqa: E402
from _serving import free_port, wait_healthy  # noqa: E402


def serve_child(policy: str, port: int, delay_s: float) -> None:
    """Child process: `vla serve` semantics, plus a sleep before every inference."""
    import torch

    from vla.serve.policy_service import load_policy_service
    from vla.serve.server import PolicyServer

    torch.set_num_threads(1)
    predict, spec, meta = load_policy_service(policy)

    def slow_predict(obs):
        time.sleep(delay_s)
        return predict(obs)

    meta = {**meta, "injected_delay_ms": delay_s * 1e3}
    PolicyServer(slow_predict, meta, spec, port=port).serve_forever()


def run_episode(client, task: str, seed: int, instruction: str, mode: str, rate_hz: float, max_steps: int,
                threshold: int) -> dict:
    from vla.serve.executor import ChunkExecutor, ExecutorConfig, run_control_loop
    from vla.sim import MetaWorldEnv

    meta = client.metadata
    cams = list(meta["cameras"])
    size = next(iter(meta["cameras"].values()))[0]
    env = MetaWorldEnv(task, cameras=tuple(cams), image_size=size, max_steps=max_steps)
    obs, _ = env.reset(seed=seed, instruction=instruction)
    client.reset()
    state = {"success": False, "success_step": None, "last": None}

    def env_step(action):
        nonlocal obs
        obs, _, _, truncated, info = env.step(action)
        if info["success"] and not state["success"]:
            state["success"], state["success_step"] = True, env.steps
        return obs, bool(info["success"] or truncated)

    def hold(o, last):
        g = float(last[3]) if last is not None else -1.0
        return np.array([0.0, 0.0, 0.0, g], np.float32)

    # sync executes the policy's n_action_steps per chunk (as in process); async may use the whole chunk, since
    # the actions its observation's latency made stale are dropped on arrival
    steps = int(meta["n_action_steps"]) if mode == "sync" else int(meta["chunk"])
    cfg = ExecutorConfig(mode=mode, n_action_steps=steps, threshold=threshold,
                         control_period_s=1.0 / rate_hz)
    with ChunkExecutor(lambda o: client.infer(o)["actions"], hold, cfg) as executor:
        records = run_control_loop(env_step, executor, obs, rate_hz=rate_hz, max_steps=max_steps, realtime=True)
        stats = executor.stats()
    env.close()
    first = next((i for i, r in enumerate(records) if r.kind == "chunk"), len(records))
    ages = [r.obs_age_steps for r in records if r.kind == "chunk" and r.obs_age_steps is not None]
    return {"task": task, "seed": seed, "success": state["success"], "success_step": state["success_step"],
            "steps": len(records), "first_chunk_step": first,
            "idle_after_first_chunk": sum(1 for r in records[first:] if r.kind == "hold"),
            "obs_age_mean": float(np.mean(ages)) if ages else None, "obs_age_max": max(ages) if ages else None,
            "executor": stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", required=True)
    ap.add_argument("--suite", default="mt10")
    ap.add_argument("--episodes-per-task", type=int, default=3)
    ap.add_argument("--delay-ms", type=float, default=100.0)
    ap.add_argument("--rate-hz", type=float, default=20.0)
    ap.add_argument("--threshold", type=int, default=4, help="async: ask for a chunk below this many actions")
    ap.add_argument("--max-steps", type=int, default=400)
    ap.add_argument("--modes", default="sync,async")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--serve-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_async.json")
    args = ap.parse_args()
    if args.serve_child:
        serve_child(args.policy, args.serve_child, args.delay_ms / 1e3)
        return

    from vla.eval.metrics import wilson_interval
    from vla.eval.runner import build_jobs
    from vla.serve.client import PolicyClient
    from vla.sim import make_suite

    port = free_port()
    child = subprocess.Popen([sys.executable, __file__, "--policy", args.policy, "--serve-child", str(port),
                              "--delay-ms", str(args.delay_ms)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    suite = make_suite(args.suite)
    jobs = build_jobs(suite, args.episodes_per_task, "train", args.seed)
    modes: dict[str, dict] = {}
    try:
        wait_healthy(child, port)
        for mode in args.modes.split(","):
            client = PolicyClient(f"ws://127.0.0.1:{port}", timeout_s=30)
            t0 = time.perf_counter()
            episodes = []
            for i, job in enumerate(jobs):
                episodes.append(run_episode(client, job.task, job.seed, job.instruction, mode, args.rate_hz,
                                            args.max_steps, args.threshold))
                e = episodes[-1]
                print(f"{mode} {i + 1}/{len(jobs)} {job.task}: success={e['success']} steps={e['steps']} "
                      f"idle={e['idle_after_first_chunk']}", file=sys.stderr)
            client.close()
            per_task = {}
            for task in suite.tasks:
                es = [e for e in episodes if e["task"] == task]
                k = sum(e["success"] for e in es)
                per_task[task] = {"success_rate": k / len(es), "successes": k, "episodes": len(es),
                                  "ci95": list(wilson_interval(k, len(es)))}
            k = sum(e["success"] for e in episodes)
            modes[mode] = {
                "success_rate": float(np.mean([t["success_rate"] for t in per_task.values()])),
                "successes": k, "episodes": len(episodes), "ci95": list(wilson_interval(k, len(episodes))),
                "idle_frames_after_first_chunk": sum(e["idle_after_first_chunk"] for e in episodes),
                "steps": sum(e["steps"] for e in episodes),
                "obs_age_mean": float(np.mean([e["obs_age_mean"] for e in episodes if e["obs_age_mean"] is not None])),
                "obs_age_max": max(e["obs_age_max"] or 0 for e in episodes),
                "late_ticks": sum(int(e["executor"].get("late_ticks", 0)) for e in episodes),
                "wall_s": time.perf_counter() - t0, "tasks": per_task, "per_episode": episodes,
            }
    finally:
        child.terminate()
        child.wait(timeout=30)
    result = {"benchmark": "serve_async", "policy": args.policy, "suite": args.suite,
              "settings": {"delay_ms": args.delay_ms, "rate_hz": args.rate_hz, "threshold": args.threshold,
                           "episodes_per_task": args.episodes_per_task, "max_steps": args.max_steps,
                           "seed": args.seed, "split": "train"},
              "modes": modes, "machine": machine_info()}
    write_result(args.out, result)


if __name__ == "__main__":
    main()
