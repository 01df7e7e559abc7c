"""Cross-embodiment transfer on robosuite (issue 15): one policy co-trained on several robots beside a specialist
per robot, the same number of training steps for every policy, evaluated with the same seeds.

Stages (each runs the `vla` command line in a subprocess and is skipped when its output exists, so an
interrupted benchmark continues where it stopped):

1. collect ``--episodes`` scripted demos of ``--task`` per robot (`vla collect robosuite`, one dataset each);
2. train a specialist per robot on its dataset alone, and one policy per ``--modes`` (pad: padded state and
   action with masks; projection: a state projection and head per robot) on the mixture of all of them;
3. evaluate every policy on every robot it knows (`vla eval --suite robosuite:<task> --robot R`);
4. with ``--heldout R``: co-train on the other robots (pad mode), then give it robot R zero-shot (``steps=0``:
   R joins the registry untrained) and fine-tuned on the first k of R's demos for each k of ``--shots``
   (``--finetune-steps``), beside a specialist trained from scratch on the same k demos (``--steps``);
   reports the fewest demos at which the transferred policy reaches 80% of the full specialist.

An HTML page with the plots goes beside the JSON (``transfer.html``).

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
from _stages import run_logged as _run  # noqa: E402
from vla.eval.metrics import wilson_interval  # noqa: E402

CAMERAS = "agentview,robot0_eye_in_hand"


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
    ap.add_argument("--heldout", default=None, help="a robot left out of co-training for the data-efficiency curve")
    ap.add_argument("--shots", default="5,10,25", help="demos of the held-out robot to fine-tune on")
    ap.add_argument("--finetune-steps", type=int, default=500)
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

    def evaluate(run: Path, robot: str, key: str) -> dict[str, Any]:
        out_dir = run / f"eval_{robot}"
        if not (out_dir / "report.json").is_file():
            times[key] = _run([*vla, "eval", "--policy", str(run), "--suite", f"robosuite:{args.task.lower()}",
                               "--robot", robot, "--controller", args.controller, "--episodes-per-task",
                               str(args.eval_episodes), "--workers", str(args.workers), "--seed", str(args.seed),
                               "--out", str(out_dir)], log)
        return _success(json.loads((out_dir / "report.json").read_text()))

    results: dict[str, Any] = {}
    for name, members in policies.items():
        run = args.runs / name
        summary = json.loads((run / "summary.json").read_text())
        per_robot = {robot: evaluate(run, robot, f"eval_{name}_{robot}_s") for robot in members}
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
    heldout = None
    if args.heldout:
        heldout = _heldout_curve(args, robots, torchrun, common, log, times, evaluate,
                                 spec[args.heldout]["success_rate"])
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
        "heldout_robot": heldout,
        "policies": results,
        "stage_s": times,
        "machine": machine_info(),
    }
    write_result(args.out, result)
    page = args.out.with_suffix(".html")
    page.write_text(_html(result))
    print(f"plots: {page}")


def _heldout_curve(args, robots, torchrun, common, log, times, evaluate, full_specialist: float) -> dict[str, Any]:
    """Zero-shot and few-shot success of the policy co-trained without ``args.heldout``, beside specialists."""
    robot = args.heldout
    if robot not in robots:
        raise SystemExit(f"--heldout {robot}: not one of --robots {robots}")
    others = [r for r in robots if r != robot]
    base = args.runs / f"cotrained_without_{robot}"
    if not (base / "policy" / "model.safetensors").is_file():
        datasets = [x for r in others for x in ("--dataset", str(args.data / r))]
        # fixed padded sizes (pi0 pads to 32): room for a held-out robot larger than the others
        times[f"train_{base.name}_s"] = _run([*torchrun, *datasets, "--out", str(base), *common,
                                              "policy.embodiment_mode=pad", "policy.state_dim=32",
                                              "policy.action_dim=8"], log)
    shots = [int(k) for k in args.shots.split(",") if k.strip()]
    data = str(args.data / robot)
    curve: dict[str, Any] = {}
    for k in [0, *shots]:
        run = args.runs / f"heldout_{robot}_{k}"
        if not (run / "policy" / "model.safetensors").is_file():
            steps = 0 if k == 0 else args.finetune_steps
            cmd = torchrun if k else [sys.executable, "-m", "vla.train"]  # zero steps: nothing to distribute
            cmd = [*cmd, "--dataset", data, "--out", str(run), f"init_policy={base / 'policy'}",
                   *[c for c in common if not c.startswith(("steps=", "policy."))], f"steps={steps}"]
            if k:
                cmd.append(f"episodes=0:{k}")
            times[f"train_{run.name}_s"] = _run(cmd, log)
        entry = {"transferred": evaluate(run, robot, f"eval_{run.name}_s")}
        if k:
            spec_run = args.runs / f"specialist_{robot}_{k}"
            if not (spec_run / "policy" / "model.safetensors").is_file():
                times[f"train_{spec_run.name}_s"] = _run([*torchrun, "--dataset", data, "--out", str(spec_run),
                                                          *common, f"episodes=0:{k}"], log)
            entry["specialist"] = evaluate(spec_run, robot, f"eval_{spec_run.name}_s")
        curve[str(k)] = entry
    target = 0.8 * full_specialist
    # undefined when the full specialist never succeeds (any policy "reaches" 80% of 0)
    reached = [k for k in shots if full_specialist > 0 and curve[str(k)]["transferred"]["success_rate"] >= target]
    return {"robot": robot, "cotrained_on": others, "finetune_steps": args.finetune_steps,
            "specialist_steps": args.steps, "full_specialist_demos": args.episodes,
            "full_specialist_success": full_specialist, "target_80pct": target, "curve": curve,
            "demos_to_80pct_of_full_specialist": min(reached) if reached else None}


def _html(result: dict[str, Any]) -> str:
    """The report's plots (success per robot; the held-out robot's curve) and settings as one page."""
    import base64
    import html

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vla.eval.report_html import figure_png

    table = result["table"]
    robots = result["settings"]["robots"]
    names = list(table)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        rates = [table[name]["per_robot"][r]["success_rate"] for r in robots]
        lo = [max(0.0, rates[j] - table[name]["per_robot"][r]["ci95"][0]) for j, r in enumerate(robots)]
        hi = [max(0.0, table[name]["per_robot"][r]["ci95"][1] - rates[j]) for j, r in enumerate(robots)]
        ax.bar([j + i * width for j in range(len(robots))], rates, width, yerr=[lo, hi], capsize=2,
               label=f"{name} (mean {table[name]['mean']:.2f})")
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(robots))], robots)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success")
    ax.legend(fontsize=7)
    fig.tight_layout()
    imgs = [base64.b64encode(figure_png(fig)).decode()]
    held = result.get("heldout_robot")
    if held:
        ks = sorted(int(k) for k in held["curve"])
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(ks, [held["curve"][str(k)]["transferred"]["success_rate"] for k in ks], "o-",
                label="co-trained, fine-tuned")
        few = [k for k in ks if k]
        ax.plot(few, [held["curve"][str(k)]["specialist"]["success_rate"] for k in few], "s--", label="specialist")
        ax.axhline(held["target_80pct"], color="grey", lw=0.8, label="80% of the full specialist")
        ax.set_xlabel(f"demos of {held['robot']}")
        ax.set_ylabel("success")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=7)
        fig.tight_layout()
        imgs.append(base64.b64encode(figure_png(fig)).decode())
    body = "".join(f'<img alt="plot" src="data:image/png;base64,{img}"><br>' for img in imgs)
    return (f"<!doctype html><meta charset='utf-8'><title>vla transfer</title><h1>{html.escape(result['benchmark'])}"
            f"</h1><p><code>{html.escape(result['command'])}</code></p>{body}"
            f"<pre>{html.escape(json.dumps(result['settings'], indent=2))}</pre>")


if __name__ == "__main__":
    main()
