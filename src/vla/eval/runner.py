"""evaluate(): roll a saved policy out on a simulator suite in parallel and write report.json/html."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path
from typing import Any

from vla.data.atomic import write_json_atomic
from vla.eval.groups import difficulty_breakdown, group_mean
from vla.eval.metrics import percentile_ms, wilson_interval
from vla.eval.rollout import RolloutJob, RolloutResult, init_worker, run_job
from vla.models.serialization import resolve_policy_dir

SPLITS = ("train", "heldout")


def load_instruction_overrides(path: str | Path, tasks: list[str]) -> dict[str, list[str]]:
    """Read a JSON file mapping task name -> list of instructions; every listed task must be known."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{p}: cannot read instructions JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a JSON object mapping task name -> list of instructions")
    out = {}
    for task, items in data.items():
        if task not in tasks:
            raise ValueError(f"{p}: task {task!r} is not in the suite (tasks: {', '.join(tasks)})")
        if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip() for s in items):
            raise ValueError(f"{p}: task {task!r}: expected a non-empty list of non-empty strings")
        out[task] = items
    return out


def build_jobs(suite, episodes_per_task: int, split: str, seed: int,
               overrides: dict[str, list[str]] | None = None) -> list[RolloutJob]:
    """Evaluation episodes: seeds from the evaluation range; instructions cycle through the split."""
    from vla.sim.seeds import evaluation_seed

    jobs = []
    for task in suite.tasks:
        instructions = (overrides or {}).get(task) or suite.instructions(task, split)
        t_index = suite.task_index(task)  # MetaWorld: the MT50 index; robosuite: 100+
        for ep in range(episodes_per_task):
            jobs.append(RolloutJob(task, ep, evaluation_seed(seed, t_index, ep), instructions[ep % len(instructions)]))
    return jobs


def evaluate(
    policy: str | Path | None,
    suite: str = "mt10",
    episodes_per_task: int = 10,
    out: str | Path = "eval",
    split: str = "train",
    instructions: str | Path | None = None,
    workers: int = 2,
    max_steps: int = 400,
    seed: int = 0,
    videos: bool = True,
    progress: bool = True,
    server: str | None = None,
    api_key: str | None = None,
    monitor: str | Path | None = None,
    recovery: str | None = None,
    recovery_budget: int = 2,
    robot: str | None = None,
    controller: str | None = None,
) -> dict[str, Any]:
    """Evaluate a saved policy (or the one served at ``server``, through client, executor, watchdog and safety
    filter); writes OUT/report.json, OUT/report.html and OUT/videos/. Returns the report.

    ``monitor``: a calibration JSON (``vla monitor calibrate``): every step is judged by the failure monitor,
    report.json gains a ``monitor`` section and OUT/monitor_steps.jsonl has every step's score, alarm and
    signals. ``recovery`` (with ``monitor``): a strategy of ``vla.serve.recovery`` acts on the alarm, at most
    ``recovery_budget`` times per episode; report.json gains a ``recovery`` section (see
    ``vla.eval.monitor_report``). ``robot``/``controller``: the robot and action space of a robosuite suite
    (``vla.eval.sims``)."""
    from vla.eval.sims import make_eval_suite, sim_spec


    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if episodes_per_task < 1 or workers < 1 or max_steps < 1:
        raise ValueError("episodes_per_task, workers and max_steps must be >= 1")
    if (policy is None) == (server is None):
        raise ValueError("give exactly one of a policy folder (--policy) and a server URL (--server)")
    monitor_opts, calibration = _monitor_options(monitor, recovery, recovery_budget, server)
    policy_dir = resolve_policy_dir(policy) if policy is not None else None
    sim = sim_spec(suite, robot, controller)
    the_suite = make_eval_suite(suite)
    overrides = load_instruction_overrides(instructions, the_suite.tasks) if instructions else None
    jobs = build_jobs(the_suite, episodes_per_task, split, seed, overrides)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    video_dir = out / "videos"
    if videos and video_dir.exists():
        for f in video_dir.glob("*.mp4"):
            f.unlink()
    server_info = {"url": server, "api_key": api_key} if server else None
    policy_info = _policy_info(policy_dir) if policy_dir is not None else _server_policy_info(server, api_key)

    t0 = time.perf_counter()
    results = _run(jobs, policy_dir, max_steps, video_dir if videos else None, workers, progress, server_info,
                   monitor_opts, sim)
    wall = time.perf_counter() - t0
    report = _report(the_suite, split, episodes_per_task, seed, max_steps, workers, results, policy_info, wall,
                     instructions)
    if calibration is not None:
        _add_monitor_sections(report, results, the_suite.tasks, max_steps, calibration, str(monitor), monitor_opts)
        _write_steps(out / "monitor_steps.jsonl", results)
    if sim is not None:
        report["sim"] = sim
    if videos:
        _prune_videos(report, video_dir)
    write_json_atomic(out / "report.json", report)
    from vla.eval.report_html import write_html_report

    write_html_report(report, out / "report.html")
    return report


def _monitor_options(monitor, recovery, budget, server) -> tuple[dict | None, dict | None]:
    """Worker options for the monitor (and recovery), and the calibration as a dict; checks the flags."""
    from vla.serve.recovery import STRATEGIES, RecoveryConfig

    if monitor is None:
        if recovery is not None:
            raise ValueError("--recovery needs --monitor CALIB.json (the alarm that triggers it)")
        return None, None
    if server is not None:
        raise ValueError("--monitor needs --policy (a served policy is monitored by the server: vla serve --monitor)")
    if recovery is not None and recovery not in STRATEGIES:
        raise ValueError(f"--recovery: expected one of {', '.join(STRATEGIES)}, got {recovery!r}")
    from vla.serve.monitor import MonitorCalibration

    cal = MonitorCalibration.load(monitor).to_dict()
    rec = None
    if recovery is not None:
        import dataclasses

        rec = dataclasses.asdict(RecoveryConfig(recovery, budget=budget))
    return {"calibration": cal, "recovery": rec}, cal


def _add_monitor_sections(report: dict[str, Any], results: list[RolloutResult], tasks: list[str], max_steps: int,
                          calibration: dict[str, Any], path: str, opts: dict[str, Any]) -> None:
    from vla.eval.monitor_report import monitor_section, recovery_section
    from vla.sim.defaults import CONTROL_RATE_HZ

    report["monitor"] = monitor_section(results, tasks, max_steps, calibration, path, CONTROL_RATE_HZ)
    report["recovery"] = recovery_section(results, tasks, opts["recovery"]) if opts.get("recovery") else None
    by_key = {(r.task, r.episode): r for r in results}
    for e in report["per_episode"]:
        r = by_key[(e["task"], e["episode"])]
        m = r.monitor
        e["monitor"] = {"score": m["score"], "first_alarm": m["first_alarm"], "alarms": int(sum(m["alarm"])),
                        "max_score": max([v for v in m["score"] if v is not None], default=0.0)}
        if r.recovery is not None:
            rec = r.recovery
            e["recovery"] = {k: rec[k] for k in ("success", "steps", "success_step", "stopped", "recoveries",
                                                 "rerun", "replay_consistent")}
            if "trace" in rec:
                e["recovery"]["score"] = rec["trace"]["score"]


def _write_steps(path: Path, results: list[RolloutResult]) -> None:
    """One JSON line per executed step: task, episode, run ("monitored" / "recovery"), step, kind, score, alarm
    and the raw signals (NaN signals, on recovery steps the monitor did not judge, are written as null)."""
    import math

    from vla.data.atomic import write_bytes_atomic

    lines = []
    for r in results:
        runs = [("monitored", r.monitor)]
        if r.recovery is not None and "trace" in r.recovery:
            runs.append(("recovery", r.recovery["trace"]))
        for name, tr in runs:
            for i in range(len(tr["score"])):
                sig = {k: (None if math.isnan(v[i]) else v[i]) for k, v in tr["signals"].items() if i < len(v)}
                lines.append(json.dumps({"task": r.task, "episode": r.episode, "run": name, "step": i,
                                         "kind": tr["kind"][i], "score": tr["score"][i], "alarm": tr["alarm"][i],
                                         "signals": sig}))
    write_bytes_atomic(path, ("\n".join(lines) + "\n").encode())


def _policy_info(policy_dir: Path) -> dict[str, Any]:
    from vla.models import Policy

    p = Policy.from_pretrained(policy_dir)
    c = p.config
    return {"path": str(policy_dir), "params": p.num_parameters(), "trainable_params": p.num_parameters(True),
            "head": c.head, "chunk": c.chunk, "n_action_steps": c.n_action_steps,
            "temporal_ensemble": c.temporal_ensemble, "cameras": list(c.cameras), "image_size": c.image_size}


def _server_policy_info(url: str, api_key: str | None) -> dict[str, Any]:
    from vla.serve.client import PolicyClient

    with PolicyClient(url, api_key=api_key) as client:
        m = client.metadata
    pol = m.get("policy") or {}
    cams = m["cameras"]
    return {"server": url, "path": pol.get("path"), "params": pol.get("parameters"),
            "trainable_params": pol.get("trainable_parameters"), "head": pol.get("head"), "chunk": m.get("chunk"),
            "n_action_steps": m.get("n_action_steps"), "temporal_ensemble": None, "cameras": list(cams),
            "image_size": next(iter(cams.values()))[0], "safety": (m.get("safety") or {}).get("name")}


def _run(jobs: list[RolloutJob], policy_dir: Path | None, max_steps: int, video_dir: Path | None, workers: int,
         progress: bool, server: dict | None = None, monitor: dict | None = None,
         sim: dict | None = None) -> list[RolloutResult]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # One torch thread per rollout worker: with two threads a chunk takes ~390 ms instead of ~5 ms
    # here whenever another process holds a core (measured, see benchmarks/latency.py).
    threads = 1
    init = (str(policy_dir) if policy_dir else None, max_steps, str(video_dir) if video_dir else None, threads, server,
            monitor, sim)
    results: list[RolloutResult] = []
    columns = (TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TextColumn("success {task.fields[sr]}"),
               TimeElapsedColumn())
    with Progress(*columns, disable=not progress) as bar:
        tid = bar.add_task("eval", total=len(jobs), sr="-")

        def done(r: RolloutResult) -> None:
            results.append(r)
            sr = sum(x.success for x in results) / len(results)
            bar.update(tid, advance=1, sr=f"{sr:.2f}")

        if workers == 1:
            init_worker(*init)
            for job in jobs:
                done(run_job(job))
        else:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers, initializer=init_worker, initargs=init) as pool:
                for r in pool.imap_unordered(run_job, jobs, chunksize=1):
                    done(r)
    return sorted(results, key=lambda r: (r.task, r.episode))


def _report(suite, split, episodes_per_task, seed, max_steps, workers, results, policy_info, wall,
            instructions_file) -> dict[str, Any]:
    tasks: dict[str, Any] = {}
    chunk_s, step_s = [], []
    for task in suite.tasks:
        rs = [r for r in results if r.task == task]
        k = sum(r.success for r in rs)
        lo, hi = wilson_interval(k, len(rs))
        tasks[task] = {
            "success_rate": k / len(rs),
            "episodes": len(rs),
            "successes": k,
            "ci95": [lo, hi],
            "mean_steps_to_success": (sum(r.success_step for r in rs if r.success) / k) if k else None,
            "instructions": sorted({r.instruction for r in rs}),
            "videos": {},
        }
        for r in rs:
            chunk_s += r.chunk_s
            step_s += r.step_s
            if r.video and ("success" if r.success else "failure") not in tasks[task]["videos"]:
                tasks[task]["videos"]["success" if r.success else "failure"] = f"videos/{r.video}"
    mean = sum(t["success_rate"] for t in tasks.values()) / len(tasks)
    total = len(results)
    served = [r.serve for r in results if r.serve is not None]
    groups = difficulty_breakdown(tasks)
    return {
        "serve": _serve_totals(served) if served else None,
        "suite": suite.name,
        "split": split,
        "instructions_file": str(instructions_file) if instructions_file else None,
        "episodes_per_task": episodes_per_task,
        "success_rate": mean,
        "episodes": total,
        "difficulty": groups,
        "difficulty_group_mean": group_mean(groups),
        "tasks": tasks,
        "latency_ms": {
            "chunk_p50": percentile_ms(chunk_s, 50),
            "chunk_p99": percentile_ms(chunk_s, 99),
            "step_p50": percentile_ms(step_s, 50),
            "step_p99": percentile_ms(step_s, 99),
            "note": f"measured inside {workers} parallel rollout worker(s) sharing the machine",
        },
        "policy": policy_info,
        "seed": seed,
        "max_steps": max_steps,
        "workers": workers,
        "wall_time_s": wall,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "per_episode": [
            {"task": r.task, "episode": r.episode, "seed": r.seed, "instruction": r.instruction, "success": r.success,
             "steps": r.steps, **({"serve": r.serve} if r.serve is not None else {})}
            for r in results
        ],
    }


def _serve_totals(per_episode: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the per-episode serve summaries (executed actions, holds, watchdog reasons, safety limits)."""
    out: dict[str, Any] = {"actions": 0, "holds": 0, "idle": 0, "safety_modified": 0, "violations": 0,
                           "watchdog": {}, "safety_limits": {}}
    for s in per_episode:
        for k in ("actions", "holds", "idle", "safety_modified", "violations"):
            out[k] += s[k]
        for k in ("watchdog", "safety_limits"):
            for name, n in s[k].items():
                out[k][name] = out[k].get(name, 0) + n
    return out


def _prune_videos(report: dict[str, Any], video_dir: Path) -> None:
    keep = {Path(v).name for t in report["tasks"].values() for v in t["videos"].values()}
    for f in video_dir.glob("*.mp4"):
        if f.name not in keep:
            f.unlink()
