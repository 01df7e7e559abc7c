"""CLI command `vla eval`."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_cmd(
        policy: Path | None = typer.Option(None, "--policy", help="Policy folder or training run folder (RUN/policy)."),
        server: str | None = typer.Option(None, "--server", help="Evaluate the policy served at ws://HOST:PORT "
                                          "(through client, executor, watchdog and safety filter)."),
        api_key_file: Path | None = typer.Option(None, help="File holding the server's API key."),
        suite: str = typer.Option("mt10", help="Suite: mt10, mt50, mt1:<task>, robosuite or robosuite:<task>."),
        robot: str | None = typer.Option(None, help="robosuite suites: the robot (default Panda)."),
        controller: str | None = typer.Option(None, help="robosuite suites: osc (default) or joint_velocity."),
        episodes_per_task: int = typer.Option(10, help="Evaluation episodes per task."),
        out: Path = typer.Option(..., "--out", help="Folder for report.json, report.html and videos/."),
        split: str = typer.Option("train", help="Instruction split: train or heldout."),
        instructions: Path | None = typer.Option(None, help="JSON file: task -> list of instructions (overrides)."),
        workers: int = typer.Option(2, help="Parallel rollout processes."),
        max_steps: int = typer.Option(400, help="Step limit per episode."),
        seed: int = typer.Option(0, help="Run seed (evaluation seeds never overlap collection seeds)."),
        videos: bool = typer.Option(True, help="Record a success and a failure video per task."),
        as_json: bool = typer.Option(False, "--json", help="Print report.json to stdout."),
        monitor: Path | None = typer.Option(None, "--monitor", help="Failure-monitor calibration JSON (vla monitor "
                                            "calibrate): score and alarm every step, a monitor section in the report."),
        recovery: str | None = typer.Option(None, "--recovery", help="With --monitor: retry, replan, home or stop "
                                            "on an alarm; the report compares success with and without it."),
        recovery_budget: int = typer.Option(2, "--recovery-budget", help="Recoveries allowed per episode."),
    ) -> None:
        """Roll a policy out in simulation; write report.json and report.html."""
        import json

        from rich.console import Console

        from vla.eval.runner import evaluate
        from vla.serve.client import PolicyClientError
        from vla.serve.commands import read_api_key

        try:
            report = evaluate(policy, suite=suite, episodes_per_task=episodes_per_task, out=out, split=split,
                              instructions=instructions, workers=workers, max_steps=max_steps, seed=seed,
                              videos=videos, progress=not as_json, server=server,
                              api_key=read_api_key(api_key_file), monitor=monitor, recovery=recovery,
                              recovery_budget=recovery_budget, robot=robot, controller=controller)
        except (FileNotFoundError, ValueError, PolicyClientError) as e:
            typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from e
        if as_json:
            slim = {k: v for k, v in report.items() if k != "per_episode"}
            typer.echo(json.dumps(slim, indent=2))
            return
        console = Console()
        print_success_table(report, console)
        if report.get("monitor"):
            print_monitor_summary(report, console)
        typer.echo(f"report: {out / 'report.html'}")


def print_success_table(report: dict, console) -> None:
    from rich.table import Table

    t = Table(title=f"{report['suite']} ({report['split']} instructions): mean success {report['success_rate']:.3f}")
    t.add_column("task")
    t.add_column("success", justify="right")
    t.add_column("95% CI")
    for task, r in report["tasks"].items():
        t.add_row(task, f"{r['successes']}/{r['episodes']} = {r['success_rate']:.2f}",
                  f"[{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]")
    console.print(t)
    groups = report.get("difficulty") or {}
    if groups:
        by_group = ", ".join(f"{g.replace('_', ' ')} {v['success_rate']:.3f} ({v['tasks']} tasks)"
                             for g, v in groups.items())
        mean = report.get("difficulty_group_mean")
        console.print(f"by difficulty: {by_group}" + (f"; mean of the groups {mean:.3f}" if mean is not None else ""))
    lat = report["latency_ms"]
    console.print(f"latency: chunk p50 {lat['chunk_p50']:.2f} ms, p99 {lat['chunk_p99']:.2f} ms; "
                  f"step p50 {lat['step_p50']:.2f} ms")
    if report.get("serve"):
        s = report["serve"]
        console.print(f"served: {s['actions']} actions, {s['holds']} holds, watchdog {s['watchdog'] or 'quiet'}, "
                      f"safety filter changed {s['safety_modified']} ({s['safety_limits'] or 'no limit hit'}), "
                      f"{s['violations']} limit violations")


def print_monitor_summary(report: dict, console) -> None:
    m = report["monitor"]["overall"]
    at = m["at"]
    fa = m["false_alarms"]

    def f(v) -> str:
        return "-" if v is None else f"{v:.2f}"

    console.print(f"monitor: AUROC (episodes running) at 25/50/75% of the step budget "
                  f"{f(at['25%']['auroc'])} / {f(at['50%']['auroc'])} / {f(at['75%']['auroc'])}; false alarms on "
                  f"successes {fa['episodes']}/{fa['successes']}; median lead {f(m['median_lead_steps'])} steps; "
                  f"cost p50 {f(m['cost_ms']['step_p50'])} ms/step")
    rec = report.get("recovery")
    if rec:
        o = rec["overall"]
        console.print(f"recovery {rec['strategy']} (budget {rec['budget']}): success {f(o['without']['success_rate'])}"
                      f" -> {f(o['with']['success_rate'])}, gain {f(o['gain'])} [{f(o['gain_ci95'][0])}, "
                      f"{f(o['gain_ci95'][1])}], {o['recoveries_per_episode']} recoveries per episode")
