"""CLI: ``vla train --dataset DIR [--dataset DIR2:0.5 ...] --out RUN [--config FILE] [key=value ...] [--resume]``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to the ``vla`` app."""

    @app.command("train", context_settings={"allow_extra_args": False})
    def train_command(
        overrides: list[str] = typer.Argument(None, help="key=value settings, e.g. steps=20000 policy.d_model=192"),
        dataset: list[str] = typer.Option(..., "--dataset", help="Dataset folder (LeRobot v3.0 / v2.1 layout); "
                                          "repeat as PATH[:WEIGHT] for a weighted mixture (several robots too)."),
        out: Path = typer.Option(..., "--out", help="Run folder: metrics, checkpoints, final policy."),
        config: Path | None = typer.Option(None, "--config", help="JSON or YAML file of train settings."),
        resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in --out."),
    ) -> None:
        """Train a policy on a dataset (runs under torchrun for several processes)."""
        import json
        import os

        from vla.cli_util import fail_on_dataset_error
        from vla.train.config import make_config
        from vla.train.loop import train

        with fail_on_dataset_error():  # a bad setting, dataset or resume point: one error line, exit 2
            cfg = make_config(dataset, out, config, overrides or [])
            run = train(cfg, resume=resume)
        summary = run / "summary.json"
        if summary.is_file() and os.environ.get("RANK", "0") == "0":
            typer.echo(json.dumps(json.loads(summary.read_text()), indent=2))
