"""`vla quickstart`: the small end-to-end demo: collect MetaWorld demos, train, evaluate, report.

Defaults are sized to finish in about 15 minutes on a 2-core CPU; every stage's wall time is
written to OUT/quickstart.json next to the dataset, the run and the evaluation report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer


def run_quickstart(out: Path, suite: str, episodes_per_task: int, steps: int, eval_episodes: int,
                   image_size: int, cameras: tuple[str, ...], workers: int, seed: int, batch_size: int) -> dict:
    """Run the three stages; returns the summary also written to OUT/quickstart.json."""
    from rich.console import Console

    from vla.data.atomic import write_json_atomic
    from vla.eval.commands import print_success_table
    from vla.eval.runner import evaluate
    from vla.sim.collect import collect_metaworld
    from vla.train.config import TrainConfig
    from vla.train.loop import train

    con = Console()
    out.mkdir(parents=True, exist_ok=True)
    data_dir, run_dir, eval_dir = out / "data", out / "run", out / "eval"
    times: dict[str, float] = {}

    con.rule(f"1/3 collect {episodes_per_task} scripted demos per task ({suite})")
    t0 = time.perf_counter()
    collect_metaworld(suite, data_dir, episodes_per_task=episodes_per_task, cameras=cameras, image_size=image_size,
                      workers=workers, seed=seed, overwrite=True)
    times["collect_s"] = time.perf_counter() - t0

    con.rule(f"2/3 train {steps} steps")
    t0 = time.perf_counter()
    cfg = TrainConfig(dataset=str(data_dir), out=str(run_dir), steps=steps, batch_size=batch_size,
                      warmup_steps=min(200, steps // 10), checkpoint_every=max(steps // 2, 1), seed=seed,
                      policy={"cameras": list(cameras), "image_size": image_size})
    train(cfg)
    times["train_s"] = time.perf_counter() - t0

    con.rule(f"3/3 evaluate {eval_episodes} episodes per task")
    t0 = time.perf_counter()
    report = evaluate(run_dir, suite=suite, episodes_per_task=eval_episodes, out=eval_dir, workers=workers,
                      seed=seed)
    times["eval_s"] = time.perf_counter() - t0

    print_success_table(report, con)
    summary = {
        "suite": suite, "episodes_per_task": episodes_per_task, "train_steps": steps, "eval_episodes": eval_episodes,
        "image_size": image_size, "cameras": list(cameras), "success_rate": report["success_rate"],
        "times_s": times, "dataset": str(data_dir), "run": str(run_dir), "report": str(eval_dir / "report.html"),
    }
    write_json_atomic(out / "quickstart.json", summary)
    con.print(f"stage times: collect {times['collect_s']:.0f} s, train {times['train_s']:.0f} s, "
              f"eval {times['eval_s']:.0f} s")
    con.print(f"report: {eval_dir / 'report.html'}")
    return summary


def register(app: typer.Typer) -> None:
    @app.command()
    def quickstart(
        out: Path = typer.Option(Path("runs/quickstart"), "--out", help="Folder for data/, run/, eval/."),
        suite: str = typer.Option("mt10", help="MetaWorld suite."),
        episodes_per_task: int = typer.Option(10, help="Scripted demonstrations per task."),
        steps: int = typer.Option(3000, help="Training steps."),
        eval_episodes: int = typer.Option(3, help="Evaluation episodes per task."),
        image_size: int = typer.Option(64, help="Square image size."),
        cameras: str = typer.Option("corner4,gripperPOV", help="Comma-separated cameras."),
        workers: int = typer.Option(2, help="Parallel simulation processes."),
        seed: int = typer.Option(0, help="Run seed."),
        batch_size: int = typer.Option(32, help="Training batch size."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON at the end."),
    ) -> None:
        """Collect a small MetaWorld set, train a policy, evaluate it and write an HTML report."""
        cams = tuple(c.strip() for c in cameras.split(",") if c.strip())
        summary = run_quickstart(out, suite, episodes_per_task, steps, eval_episodes, image_size, cams, workers,
                                 seed, batch_size)
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
