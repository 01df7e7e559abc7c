"""MetaWorld MT10 inside a cross-embodiment mixture, and MT10's data-efficiency curve (issue 15).

Runs (each skipped when its output exists, so an interrupted benchmark continues where it stopped):

- ``alone``: the default policy trained on the MT10 dataset alone;
- ``cotrained`` (``cotrained<N>``: N steps instead of ``--steps``): the same recipe on a mixture of the MT10
  dataset and every robosuite dataset under ``--robosuite`` (one per robot; equal weights pool the frames,
  `vla.train.mixture`), with the cameras of both simulators (a sample's missing cameras are masked, never
  encoded);
- ``demos<K>``: the default recipe on the first K demos of each MT10 task (``episodes=``), for the curve.

Every policy is evaluated on MT10 with train and held-out instructions (``--episodes-per-task`` per task,
seeds never used in collection); the co-trained one also on robosuite (its robots, 10 episodes each).

    python benchmarks/mt10_transfer.py --mt10 /work/data/mt10 --robosuite /work/data/rs_lift128 \\
        --runs /work/runs/mt10_transfer --runs-to alone,cotrained [--steps 8000]

``--keep-previous`` adds runs to an existing --out instead of replacing it: the runs it holds that this
invocation does not run are kept as measured (their times too), and ``commands`` lists every invocation. It
refuses a file measured with other settings (steps, global batch, episodes per task, seed).

Writes benchmarks/results/mt10_transfer.json (or --out): per run, MT10 success per split and task with 95%
intervals, robosuite success per robot, training time and samples/s, the machine; the co-trained minus alone
difference per split with a two-proportion 95% interval; the data-efficiency points.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result  # noqa: E402
from _stages import run_logged as _run  # noqa: E402
from transfer import _success as pooled_success  # noqa: E402
from vla.data import Dataset  # noqa: E402

MT10_CAMERAS = ["corner4", "gripperPOV"]
ROBOSUITE_CAMERAS = ["agentview", "robot0_eye_in_hand"]


def demos_per_task(path: Path) -> dict[str, int]:
    """How many episodes each MetaWorld task has in the dataset."""
    return {t: len(v) for t, v in _episodes_by_task(path).items()}


def first_demos_per_task(path: Path, k: int) -> list[int]:
    """Indices of the first ``k`` episodes of each MetaWorld task."""
    by_task = _episodes_by_task(path)
    short = {t: len(v) for t, v in by_task.items() if len(v) < k}
    if short:
        raise SystemExit(f"{path}: fewer than {k} episodes for {short}")
    return sorted(i for v in by_task.values() for i in v[:k])


def _episodes_by_task(path: Path) -> dict[str, list[int]]:
    """Episode indices per MetaWorld task, from each episode's provenance source path ``metaworld/<task>``."""
    ds = Dataset.open(path)
    by_task: dict[str, list[int]] = defaultdict(list)
    for i in ds.episode_indices:
        prov = ds.episode(i).provenance or {}
        task = str((prov.get("source") or {}).get("path", "")).removeprefix("metaworld/")
        if not task:
            raise SystemExit(f"{path}: episode {i} has no provenance source path naming its MetaWorld task")
        by_task[task].append(i)
    return dict(by_task)


def split_success(report: dict[str, Any]) -> dict[str, Any]:
    """Pooled success with its 95% interval (`transfer._success`), and each task's successes."""
    tasks = {t: {"successes": v["successes"], "episodes": v["episodes"]} for t, v in report["tasks"].items()}
    return {**pooled_success(report), "tasks": tasks}


def difference_ci(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """a - b of two success rates with a normal-approximation 95% interval (Wald, unpooled)."""
    pa, pb = a["success_rate"], b["success_rate"]
    se = math.sqrt(pa * (1 - pa) / a["episodes"] + pb * (1 - pb) / b["episodes"])
    d = pa - pb
    return {"difference": d, "ci95": [d - 1.96 * se, d + 1.96 * se]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mt10", type=Path, required=True, help="the MT10 dataset (vla collect metaworld --suite mt10)")
    ap.add_argument("--robosuite", type=Path, default=None, help="folder of per-robot robosuite datasets")
    ap.add_argument("--runs", type=Path, required=True)
    ap.add_argument("--runs-to", default="alone,cotrained",
                    help="alone, cotrained, cotrained<steps>, demos<K> (comma-separated)")
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--episodes-per-task", type=int, default=10)
    ap.add_argument("--robosuite-episodes", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "mt10_transfer.json")
    ap.add_argument("--keep-previous", action="store_true",
                    help="keep the runs already in --out that this invocation does not run")
    args = ap.parse_args()
    previous = load_previous(args.out, args) if args.keep_previous else None
    wanted = [r.strip() for r in args.runs_to.split(",") if r.strip()]
    args.runs.mkdir(parents=True, exist_ok=True)
    log = args.runs / "log.txt"
    vla = [sys.executable, "-m", "vla.cli"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc),
                "-m", "vla.train"]
    cache = args.cache_dir or args.runs / "cache"
    common = [f"steps={args.steps}", f"batch_size={args.batch_size}", f"seed={args.seed}", f"cache_dir={cache}",
              "progress=false"]
    robots = (sorted(p.name for p in args.robosuite.iterdir() if (p / "meta" / "info.json").is_file())
              if args.robosuite else [])
    times_file = args.runs / "times.json"
    times: dict[str, float] = json.loads(times_file.read_text()) if times_file.is_file() else {}

    def train(name: str, extra: list[str]) -> Path:
        run = args.runs / name
        if not (run / "policy" / "model.safetensors").is_file():
            times[f"train_{name}_s"] = _run([*torchrun, *extra, "--out", str(run), *common, *extra_steps], log)
            times_file.write_text(json.dumps(times, indent=1))
        return run

    def evaluate(run: Path, suite: str, split: str | None, robot: str | None, episodes: int) -> dict[str, Any]:
        tag = split or robot
        out = run / f"eval_{tag}"
        if not (out / "report.json").is_file():
            cmd = [*vla, "eval", "--policy", str(run), "--suite", suite, "--episodes-per-task", str(episodes),
                   "--workers", str(args.workers), "--max-steps", "400" if split else "150", "--seed",
                   str(args.seed), "--out", str(out)]
            cmd += ["--split", split] if split else ["--robot", str(robot)]
            times[f"eval_{run.name}_{tag}_s"] = _run(cmd, log)
            times_file.write_text(json.dumps(times, indent=1))
        return split_success(json.loads((out / "report.json").read_text()))

    results: dict[str, Any] = {}
    for name in wanted:
        # cotrained<N>: the mixture trained N steps (e.g. as many MetaWorld samples as `alone` gets in --steps)
        extra_steps = [f"steps={name[9:]}"] if name.startswith("cotrained") and name[9:].isdigit() else []
        if name == "alone":
            run = train(name, ["--dataset", str(args.mt10)])
        elif name == "cotrained" or extra_steps:
            if not robots:
                raise SystemExit("cotrained needs --robosuite with at least one robot dataset")
            datasets = ["--dataset", str(args.mt10)]
            datasets += [x for r in robots for x in ("--dataset", str(args.robosuite / r))]
            run = train(name, [*datasets, f"policy.cameras=[{','.join(MT10_CAMERAS + ROBOSUITE_CAMERAS)}]"])
        elif name.startswith("demos") and name[5:].isdigit():
            eps = first_demos_per_task(args.mt10, int(name[5:]))
            run = train(name, ["--dataset", str(args.mt10), f"episodes={','.join(map(str, eps))}"])
        else:
            raise SystemExit(f"--runs-to: unknown run {name!r} (alone, cotrained, cotrained<steps>, demos<K>)")
        summary = json.loads((run / "summary.json").read_text())
        entry: dict[str, Any] = {
            "mt10": {s: evaluate(run, "mt10", s, None, args.episodes_per_task) for s in ("train", "heldout")},
            "train_wall_s": summary.get("wall_s"), "samples_per_s": summary.get("samples_per_s_after_first_epoch"),
            "params": summary.get("params"), "num_frames": summary.get("num_frames"),
            "embodiments": summary.get("embodiments")}
        if name.startswith("cotrained"):
            entry["robosuite"] = {r: evaluate(run, "robosuite:lift", None, r, args.robosuite_episodes) for r in robots}
        results[name] = entry
    if previous is not None:
        results = {**{n: r for n, r in previous["runs"].items() if n not in results}, **results}
        times = {**previous.get("times_s", {}), **times}
        robots = robots or previous.get("robosuite_robots", [])
    earlier_commands = (previous.get("commands") or [previous["command"]]) if previous else []

    comparison = None
    if "alone" in results:
        comparison = {name: {split: difference_ci(r["mt10"][split], results["alone"]["mt10"][split])
                             for split in ("train", "heldout")}
                      for name, r in results.items() if name.startswith("cotrained")} or None
    points = {int(n[5:]): r for n, r in results.items() if n.startswith("demos")}
    if "alone" in results:  # the full dataset is the curve's last point
        per_task = demos_per_task(args.mt10)
        if len(set(per_task.values())) == 1:
            points.setdefault(next(iter(per_task.values())), results["alone"])
    curve = sorted((k, r["mt10"]["train"]["success_rate"], r["mt10"]["heldout"]["success_rate"])
                   for k, r in points.items())
    result = {
        "benchmark": "MT10 alone vs inside a robosuite mixture; MT10 success vs demos per task",
        "command": " ".join(sys.argv),
        "commands": [*earlier_commands, " ".join(sys.argv)],
        "steps": args.steps, "seed": args.seed, "global_batch": args.batch_size * args.nproc,
        "episodes_per_task": args.episodes_per_task, "robosuite_robots": robots, "runs": results,
        "cotrained_minus_alone": comparison,
        "data_efficiency": [{"demos_per_task": k, "train": a, "heldout": b} for k, a, b in curve],
        "data_efficiency_ci95": {str(k): {split: points[k]["mt10"][split]["ci95"] for split in ("train", "heldout")}
                                 for k in sorted(points)},
        "times_s": times, "machine": machine_info()}
    write_result(args.out, result)
    args.out.with_suffix(".html").write_text(report_page(result))
    print(json.dumps({"cotrained_minus_alone": comparison, "curve": curve}, indent=1))


def load_previous(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The result in ``path`` whose runs this invocation extends; refuse one measured with other settings."""
    if not path.is_file():
        raise SystemExit(f"--keep-previous: {path} does not exist")
    try:
        previous = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--keep-previous: {path} is not JSON: {exc}") from None
    if not isinstance(previous, dict) or not isinstance(previous.get("runs"), dict):
        raise SystemExit(f"--keep-previous: {path}: field 'runs' missing or not an object")
    mine = {"steps": args.steps, "global_batch": args.batch_size * args.nproc,
            "episodes_per_task": args.episodes_per_task, "seed": args.seed}
    for key, value in mine.items():
        theirs = previous.get(key, 0 if key == "seed" else None)  # files before 'seed' was recorded used 0
        if theirs != value:
            raise SystemExit(f"--keep-previous: {path}: field {key!r} is {theirs!r}, this invocation uses {value!r}")
    return previous


def report_page(result: dict[str, Any]) -> str:
    """One HTML page: MT10 success of every run per split (bars with 95% intervals), and the curve."""
    import base64
    import html

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vla.eval.report_html import figure_png

    imgs = []
    runs = result["runs"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / 2
    for i, split in enumerate(("train", "heldout")):
        rates = [runs[n]["mt10"][split]["success_rate"] for n in runs]
        ci = [runs[n]["mt10"][split]["ci95"] for n in runs]
        low = [max(0.0, r - c[0]) for r, c in zip(rates, ci, strict=True)]
        high = [max(0.0, c[1] - r) for r, c in zip(rates, ci, strict=True)]
        ax.bar([j + i * width for j in range(len(runs))], rates, width, yerr=[low, high], capsize=2,
               label=f"{split} instructions")
    ax.set_xticks([j + width / 2 for j in range(len(runs))], list(runs), fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("MT10 success")
    ax.legend(fontsize=7)
    fig.tight_layout()
    imgs.append(base64.b64encode(figure_png(fig)).decode())
    if result["data_efficiency"]:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ks = [p["demos_per_task"] for p in result["data_efficiency"]]
        for split, style in (("train", "o-"), ("heldout", "s--")):
            ax.plot(ks, [p[split] for p in result["data_efficiency"]], style, label=f"{split} instructions")
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("demos per task")
        ax.set_ylabel("MT10 success")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=7)
        fig.tight_layout()
        imgs.append(base64.b64encode(figure_png(fig)).decode())
    body = "".join(f'<img alt="plot" src="data:image/png;base64,{img}"><br>' for img in imgs)
    settings = {k: result[k] for k in ("steps", "global_batch", "episodes_per_task", "robosuite_robots")}
    commands = "".join(f"<p><code>{html.escape(c)}</code></p>" for c in result.get("commands", [result["command"]]))
    return (f"<!doctype html><meta charset='utf-8'><title>vla MT10 transfer</title>"
            f"<h1>{html.escape(result['benchmark'])}</h1>{commands}{body}"
            f"<pre>{html.escape(json.dumps(settings, indent=2))}</pre>")


if __name__ == "__main__":
    main()
