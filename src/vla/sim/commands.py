"""CLI for vla.sim: ``vla collect metaworld ...`` and ``vla collect robosuite ...`` (registered by ``register``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from vla.sim.defaults import DEFAULT_CAMERAS, DEFAULT_IMAGE_SIZE


def _metaworld(
    out: Path = typer.Option(..., "--out", help="Dataset folder to create."),
    suite: str = typer.Option("mt10", "--suite", help="mt10, mt50[:<difficulty>], ml45-train|test, mt1:<task>."),
    episodes_per_task: int = typer.Option(50, "--episodes-per-task", min=1, help="Successful episodes per task."),
    cameras: str = typer.Option(",".join(DEFAULT_CAMERAS), "--cameras", help="Comma-separated camera names."),
    image_size: int = typer.Option(DEFAULT_IMAGE_SIZE, "--image-size", min=8, help="Square image size in pixels."),
    workers: int = typer.Option(2, "--workers", min=1, help="Parallel simulation processes."),
    seed: int = typer.Option(0, "--seed", min=0, help="Run seed (collection seeds never overlap evaluation)."),
    max_steps: int = typer.Option(500, "--max-steps", min=1, help="Step limit per attempt."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    action_noise: float = typer.Option(0.0, "--action-noise", min=0.0, max=1.0,
                                       help="DART: std of Gaussian noise on the executed arm actions (labels stay "
                                            "the expert's)."),
    start_steps: int = typer.Option(0, "--start-steps", min=0,
                                    help="Up to this many unrecorded random arm steps before each episode."),
) -> None:
    """Collect scripted-expert MetaWorld demonstrations (successful episodes only) into a dataset."""
    from vla.sim.collect import collect_metaworld

    cams = tuple(c.strip() for c in cameras.split(",") if c.strip())
    summary = collect_metaworld(suite, out, episodes_per_task=episodes_per_task, cameras=cams,
                                image_size=image_size, workers=workers, seed=seed, max_steps=max_steps,
                                overwrite=overwrite, progress=True, action_noise=action_noise,
                                start_steps=start_steps)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    _print_summary(summary)


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"MetaWorld {summary['suite']} -> {summary['out']}")
    table.add_column("task")
    table.add_column("kept", justify="right")
    table.add_column("rejected", justify="right")
    for task, kept in summary["kept"].items():
        table.add_row(task, str(kept), str(summary["rejected"][task]))
    console = Console()
    console.print(table)
    console.print(f"{summary['episodes']} episodes, {summary['frames']} frames in {summary['wall_time_s']:.1f} s "
                  f"({summary['frames_per_s']:.0f} frames/s, {summary['rendered_images_per_s']:.0f} rendered images/s)")
    if summary["shortfall"]:
        console.print(f"[yellow]short of episodes: {summary['shortfall']}")


def _robosuite(
    out: Path = typer.Option(..., "--out", help="Folder to create; one dataset per robot in OUT/<robot>."),
    robots: str = typer.Option("Panda", "--robots", help="Comma-separated robosuite robots (e.g. Panda,UR5e)."),
    tasks: str = typer.Option("Lift", "--tasks", help="Comma-separated tasks: Lift, Stack, PickPlaceCan."),
    episodes_per_task: int = typer.Option(50, "--episodes-per-task", min=1, help="Successful episodes per task."),
    controller: str = typer.Option("osc", "--controller", help="Action space: osc (7-D end-effector delta) or "
                                   "joint_velocity (arm joints + gripper)."),
    cameras: str = typer.Option("agentview,robot0_eye_in_hand", "--cameras", help="Comma-separated camera names."),
    image_size: int = typer.Option(128, "--image-size", min=8, help="Square image size in pixels."),
    workers: int = typer.Option(2, "--workers", min=1, help="Parallel simulation processes."),
    seed: int = typer.Option(0, "--seed", min=0, help="Run seed (collection seeds never overlap evaluation)."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Step limit per attempt (default per task)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT/<robot> if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Collect scripted-expert robosuite demonstrations (successful episodes only), one dataset per robot."""
    from vla.errors import VlaError
    from vla.sim.robosuite.collect import collect_robosuite

    def split(text: str) -> list[str]:
        return [x.strip() for x in text.split(",") if x.strip()]

    try:
        summary = collect_robosuite(split(robots), split(tasks), out, episodes_per_task=episodes_per_task,
                                    controller=controller, cameras=tuple(split(cameras)), image_size=image_size,
                                    workers=workers, seed=seed, max_steps=max_steps, overwrite=overwrite,
                                    progress=True)
    except ValueError as e:  # e.g. an unknown camera, raised inside the simulator
        raise VlaError(str(e)) from e
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"robosuite {summary['controller']} -> {summary['out']}")
    for col in ("robot", "task", "kept", "rejected"):
        table.add_column(col, justify="right" if col in ("kept", "rejected") else "left")
    for robot, r in summary["robots"].items():
        for task, kept in r["kept"].items():
            table.add_row(robot, task, str(kept), str(r["rejected"][task]))
    console = Console()
    console.print(table)
    console.print(f"{summary['episodes']} episodes, {summary['frames']} frames in {summary['wall_time_s']:.1f} s "
                  f"({summary['frames_per_s']:.1f} frames/s, {summary['rendered_images_per_s']:.1f} rendered images/s)")


def register(app: typer.Typer) -> None:
    """Add the ``collect`` command group with its ``metaworld`` and ``robosuite`` commands to ``app``."""
    collect_app = typer.Typer(help="Collect demonstrations into a dataset.", no_args_is_help=True)
    collect_app.command("metaworld")(_metaworld)
    collect_app.command("robosuite")(_robosuite)
    app.add_typer(collect_app, name="collect")
