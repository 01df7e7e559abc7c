"""CLI: ``vla monitor calibrate`` (failure-monitor calibration from policy rollouts)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    monitor_app = typer.Typer(help="Failure monitor: calibrate its alarm on a policy's successful rollouts.",
                              no_args_is_help=True)
    app.add_typer(monitor_app, name="monitor")

    @monitor_app.command("calibrate")
    def calibrate_cmd(
        policy: Path = typer.Option(..., "--policy", help="Policy folder or training run folder (RUN/policy)."),
        suite: str = typer.Option("mt10", help="Suite: mt10, mt50[:<difficulty>], ml45-train|test, mt1:<task>."),
        tasks: str | None = typer.Option(None, help="Comma-separated subset of the suite's tasks to calibrate on "
                                         "(the others stay held out from calibration). Default: all."),
        episodes_per_task: int = typer.Option(20, help="Calibration rollouts per task (only successes are used)."),
        alpha: float = typer.Option(0.1, help="False-alarm rate on successful episodes the threshold is set for."),
        out: Path | None = typer.Option(None, "--out", help="Calibration JSON (default RUN/monitor.json)."),
        workers: int = typer.Option(2, help="Parallel rollout processes."),
        max_steps: int = typer.Option(400, help="Step limit per episode (use the evaluation's)."),
        seed: int = typer.Option(0, help="Run seed (calibration seeds never overlap collection or evaluation)."),
        signals: str | None = typer.Option(None, help="Comma-separated signals in the score (default: all, "
                                           "spread only with --samples)."),
        samples: int = typer.Option(0, help="Extra chunks sampled per query for the spread signal (sampling heads)."),
        as_json: bool = typer.Option(False, "--json", help="Print the calibration summary as JSON."),
    ) -> None:
        """Roll the policy out with calibration seeds; write the monitor calibration from its successes."""
        import json

        from vla.eval.calibrate import calibrate_monitor

        def split(text: str | None) -> list[str] | None:
            return [t.strip() for t in text.split(",") if t.strip()] if text else None

        try:
            cal = calibrate_monitor(policy, suite=suite, tasks=split(tasks), episodes_per_task=episodes_per_task,
                                    alpha=alpha, out=out, workers=workers, max_steps=max_steps, seed=seed,
                                    signals=split(signals), samples=samples, progress=not as_json)
        except (FileNotFoundError, ValueError) as e:
            typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from e
        summary = {"threshold": cal.threshold, "alpha": cal.alpha, "weights": cal.weights, "episodes": cal.episodes,
                   "tasks": cal.source.get("tasks"), "success_rate": cal.source.get("success_rate")}
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
            return
        typer.echo(f"monitor calibrated on {cal.episodes['successes']} successful of {cal.episodes['rollouts']} "
                   f"rollouts (tasks: {', '.join(cal.source['tasks'])}): threshold {cal.threshold:.3f} for "
                   f"alpha {cal.alpha}; signals {', '.join(cal.weights)}")
