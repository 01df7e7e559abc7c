"""CLI: ``vla adapt --policy RUN --suite SUITE --rounds N --episodes-per-round M --out DIR [--resume] [...]``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("adapt")
    def adapt_cmd(
        policy: Path = typer.Option(..., "--policy", help="Policy folder or training run folder (RUN/policy)."),
        suite: str = typer.Option("mt10", "--suite", help="mt10, mt50[:<difficulty>], ml45-train|test, mt1:<task>."),
        rounds: int = typer.Option(..., "--rounds", help="Adaptation rounds."),
        episodes_per_round: int = typer.Option(..., "--episodes-per-round",
                                               help="Rollouts per round, spread evenly over the suite's tasks."),
        out: Path = typer.Option(..., "--out", help="New folder: adapt.json, report.html, dataset/, rounds/."),
        teacher: str = typer.Option("expert", "--teacher", help="Who takes over at an alarm: expert (scripted)."),
        mode: str = typer.Option("both", "--mode", help="dagger (interventions), filtered (successful rollouts) "
                                                        "or both."),
        steps_per_round: int = typer.Option(500, "--steps-per-round", help="Fine-tuning steps per round."),
        eval_episodes: int = typer.Option(10, "--eval-episodes", help="Evaluation episodes per task per round."),
        baseline: str = typer.Option("every", "--baseline", help="Extra-demos baseline: every (each round), last "
                                                                 "(once, after the rounds) or none."),
        monitor: Path | None = typer.Option(None, "--monitor", help="Monitor calibration JSON (default: "
                                            "RUN/monitor.json, else calibrated on the first successful rollouts)."),
        alpha: float = typer.Option(0.2, "--alpha", help="False-alarm rate of a calibration made here."),
        dataset: Path | None = typer.Option(None, "--dataset", help="The policy's training dataset (default: from "
                                            "RUN/train_config.json)."),
        workers: int = typer.Option(2, "--workers", help="Parallel rollout processes."),
        max_steps: int = typer.Option(400, "--max-steps", help="Policy steps per rollout and evaluation episode."),
        expert_steps: int = typer.Option(300, "--expert-steps", help="Steps the expert gets after a takeover."),
        lr: float | None = typer.Option(None, "--lr", help="Fine-tuning learning rate (default: the run's)."),
        batch_size: int | None = typer.Option(None, "--batch-size", help="Fine-tuning batch (default: the run's)."),
        seed: int = typer.Option(0, "--seed", help="Adaptation scenes and fine-tuning seed."),
        as_json: bool = typer.Option(False, "--json", help="Print adapt.json; no progress output."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out after its last finished "
                                    "round (same settings; --rounds may be larger)."),
    ) -> None:
        """Adapt a policy online in simulation: monitored rollouts, expert takeovers, fine-tuning rounds."""
        import json

        from vla.adapt import AdaptSettings, adapt
        from vla.cli_util import fail_on_dataset_error

        settings = AdaptSettings(
            policy=str(policy), suite=suite, rounds=rounds, episodes_per_round=episodes_per_round, out=str(out),
            teacher=teacher, mode=mode, steps_per_round=steps_per_round, eval_episodes=eval_episodes,
            baseline=baseline, monitor=str(monitor) if monitor else None, alpha=alpha,
            dataset=str(dataset) if dataset else None, workers=workers, max_steps=max_steps,
            expert_steps=expert_steps, lr=lr, batch_size=batch_size, seed=seed, progress=not as_json, resume=resume)
        with fail_on_dataset_error():
            result = adapt(settings)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            summary = result.get("summary") or {}
            typer.echo(summary.get("verdict") or f"final success {summary.get('final_success_rate')}")
            typer.echo(f"report: {out / 'report.html'}")
