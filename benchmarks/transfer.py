"""Cross-embodiment transfer on robosuite (issue 15): one policy co-trained on several robots beside a specialist
per robot, the same number of training steps for every policy, evaluated with the same seeds.

Stages (each runs the `vla` command line in a subprocess and is skipped when its output exists, so an
interrupted benchmark continues where it stopped):

1. collect ``--episodes`` scripted demos of ``--task`` per robot (`vla collect robosuite`, one dataset each);
2. train a specialist per robot on its dataset alone, and one policy per ``--modes`` (pad: padded state and
   action with masks; projection: a state projection and head per robot) on the mixture of all of them;
3. evaluate every policy on every robot it knows (`vla eval --suite robosuite:<task> --robot R`).

    python benchmarks/transfer.py --data /work/data/rs_lift --runs /work/runs/transfer \\
        [--robots Panda,Sawyer,UR5e,Kinova3,IIWA] [--task Lift] [--episodes 30] [--steps 1500] [--image-size 64]

Writes benchmarks/results/transfer.json (or --out): success per robot with 95% intervals for each policy, the
mean over robots, the relative gain of each co-trained policy over the specialists, stage times, the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result  # noqa: E402
from vla.eval.metrics import wilson_interval  # noqa: E402

CAMERAS = "agentview,robot0_eye_in_hand"


def _run(cmd: list[str], log: Path) -> float:
    """Run a command with its output appended to ``log``; returns its wall seconds (raises on failure)."""
    print("+", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    with log.open("a") as fh:
        fh.write("+ " + " ".join(cmd) + "\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "MUJOCO_GL": "egl"}).returncode
    if rc:
        raise SystemExit(f"command failed (exit {rc}), see {log}: {' '.join(cmd)}")
    return round(time.perf_counter() - t0, 1)


def _success(report: dict[str, Any]) -> dict[str, Any]:
    k = sum(t["successes"] for t in report["tasks"].values())
    n = sum(t["episodes"] for t in report["tasks"].values())
    return {"success_rate": k / n, "successes": k, "episodes": n, "ci95": list(wilson_interval(k, n))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder of the per-robot datasets")
    ap.add_argument("--runs", type=Path, required=True)
    ap.add_argument("--robots", default="Panda,Sawyer,UR5e,Kinova3,IIWA")
    ap.add_argument("--task", default="Lift")
    ap.add_argument("--controller", default="osc")
    ap.add_argument("--episodes", type=int, default=30, help="demos per robot")
    ap.add_argument("--steps", type=int, default=1500, help="training steps of every policy")
    ap.add_argument("--batch-size", type=int, default=32, help="per process")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--modes", default="pad,projection", help="co-trained policies: embodiment_mode values")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "transfer.json")
    args = ap.parse_args()
    robots = [r.strip() for r in args.robots.split(",") if r.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.runs.mkdir(parents=True, exist_ok=True)
    log = args.runs / "transfer_log.txt"
    vla = [sys.executable, "-m", "vla.cli"]
    env = {**os.environ, "MUJOCO_GL": "egl"}
    times: dict[str, Any] = {}

    missing = [r for r in robots if not (args.data / r / "meta" / "info.json").is_file()]
    if missing:
        print("+ collect", missing, flush=True)
        t0 = time.perf_counter()
        out = subprocess.run([*vla, "collect", "robosuite", "--robots", ",".join(missing), "--tasks", args.task,
                              "--episodes-per-task", str(args.episodes), "--controller", args.controller,
                              "--cameras", CAMERAS, "--image-size", str(args.image_size), "--workers",
                              str(args.workers), "--seed", str(args.seed), "--out", str(args.data), "--json"],
                             capture_output=True, text=True, env=env)
        if out.returncode:
            raise SystemExit(f"collection failed: {out.stderr[-2000:]}")
        (args.runs / "collect.json").write_text(out.stdout)
        times["collect_s"] = round(time.perf_counter() - t0, 1)
    collect_file = args.runs / "collect.json"
    collect = json.loads(collect_file.read_text()) if collect_file.is_file() else None

    common = [f"steps={args.steps}", f"batch_size={args.batch_size}", f"seed={args.seed}",
              f"cache_dir={args.runs / 'cache'}", f"policy.cameras=[{CAMERAS}]", f"policy.image_size={args.image_size}",
              "progress=false"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc),
                "-m", "vla.train"]
    policies: dict[str, list[str]] = {f"specialist_{r}": [r] for r in robots}
    policies.update({f"cotrained_{m}": robots for m in modes})
    for name, members in policies.items():
        run = args.runs / name
        if (run / "policy" / "model.safetensors").is_file():
            continue
        datasets = [x for r in members for x in ("--dataset", str(args.data / r))]
        mode = [f"policy.embodiment_mode={name.removeprefix('cotrained_')}"] if name.startswith("cotrained_") else []
        times[f"train_{name}_s"] = _run([*torchrun, *datasets, "--out", str(run), *common, *mode], log)

    results: dict[str, Any] = {}
    for name, members in policies.items():
        run = args.runs / name
        summary = json.loads((run / "summary.json").read_text())
        per_robot = {}
        for robot in members:
            out_dir = run / f"eval_{robot}"
            if not (out_dir / "report.json").is_file():
                times[f"eval_{name}_{robot}_s"] = _run(
                    [*vla, "eval", "--policy", str(run), "--suite", f"robosuite:{args.task.lower()}", "--robot", robot,
                     "--controller", args.controller, "--episodes-per-task", str(args.eval_episodes),
                     "--workers", str(args.workers), "--seed", str(args.seed), "--out", str(out_dir)], log)
            per_robot[robot] = _success(json.loads((out_dir / "report.json").read_text()))
        results[name] = {"robots": per_robot, "train_wall_s": summary.get("wall_s"), "params": summary.get("params"),
                         "samples_per_s": summary.get("samples_per_s_after_first_epoch"),
                         "embodiments": summary.get("embodiments")}

    spec = {r: results[f"specialist_{r}"]["robots"][r] for r in robots}
    spec_mean = sum(v["success_rate"] for v in spec.values()) / len(robots)
    table: dict[str, Any] = {"specialists": {"per_robot": spec, "mean": spec_mean}}
    for mode in modes:
        co = results[f"cotrained_{mode}"]["robots"]
        mean = sum(co[r]["success_rate"] for r in robots) / len(robots)
        table[f"cotrained_{mode}"] = {"per_robot": co, "mean": mean,
                                      "relative_gain_over_specialists": (mean - spec_mean) / spec_mean
                                      if spec_mean > 0 else None}
    result = {
        "benchmark": "co-training on several robots vs one specialist per robot (robosuite)",
        "command": " ".join(["python", "benchmarks/transfer.py", *sys.argv[1:]]),
        "settings": {"robots": robots, "task": args.task, "controller": args.controller,
                     "demos_per_robot": args.episodes, "steps_per_policy": args.steps,
                     "batch_size_per_process": args.batch_size, "processes": args.nproc, "image_size": args.image_size,
                     "cameras": CAMERAS.split(","), "eval_episodes_per_robot": args.eval_episodes, "seed": args.seed,
                     "note": "every policy trains for the same number of steps, so a co-trained policy sees each robot "
                             "in a fraction of its batches"},
        "collection": None if collect is None else {k: collect.get(k) for k in (
            "episodes", "frames", "wall_time_s", "frames_per_s", "rendered_images_per_s")},
        "table": table,
        "policies": results,
        "stage_s": times,
        "machine": machine_info(),
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
