"""CLI: ``vla audit DIR [--json] [--out REPORT] [--fix drop|repair --to DST]``."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def audit(
        path: Path = typer.Argument(..., help="Dataset folder (ours, LeRobot v3.0 or v2.1)."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        out: Path | None = typer.Option(None, "--out", help="Write the JSON report to this file."),
        fix: str | None = typer.Option(None, "--fix", help="drop: leave out bad episodes; repair: fix what is safe."),
        to: Path | None = typer.Option(None, "--to", help="Destination dataset for --fix."),
        min_severity: str = typer.Option("error", help="With --fix drop: drop episodes with findings this bad."),
        max_gap: int = typer.Option(5, help="With --fix repair: longest gap (frames) filled by interpolation."),
        provenance: Path | None = typer.Option(None, help="JSON with provenance defaults for --fix (e.g. "
                                                        "collector_id, collection_method) when the source has none."),
        no_images: bool = typer.Option(False, "--no-images", help="Skip camera checks (faster)."),
        overwrite: bool = typer.Option(False, help="Replace --to if it exists."),
    ) -> None:
        """Find timing, modality, action and episode problems; score episodes; optionally fix."""
        from vla.cli_util import fail_on_dataset_error
        from vla.data.audit.fix import FIX_MODES, fix_dataset
        from vla.data.audit.runner import audit as run_audit
        from vla.data.dataset import Dataset

        if fix is not None and fix not in FIX_MODES:
            raise typer.BadParameter(f"--fix must be one of {', '.join(FIX_MODES)}")
        if fix is not None and to is None:
            raise typer.BadParameter("--fix needs --to DST")
        with fail_on_dataset_error():
            ds = Dataset.open(path)
            report = _with_progress(lambda cb: run_audit(ds, with_images=not no_images, progress=cb),
                                    ds.num_episodes, "auditing", quiet=as_json)
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(report.to_json())
            summary = None
            if fix is not None:
                try:
                    defaults = json.loads(provenance.read_text()) if provenance else None
                except (OSError, ValueError) as e:
                    from vla.data.errors import DatasetError

                    raise DatasetError(provenance, f"cannot read the provenance defaults as JSON: {e}") from e
                summary = _with_progress(
                    lambda cb: fix_dataset(ds, to, fix, report, min_severity, max_gap, defaults, overwrite, cb),
                    ds.num_episodes, f"fix {fix}", quiet=as_json)
        if as_json:
            d = report.to_dict()
            if summary is not None:
                d["fix"] = summary.to_dict()
            from vla.data.atomic import json_safe

            typer.echo(json.dumps(json_safe(d), indent=2, allow_nan=False))
        else:
            _print(report, summary)


def _with_progress(fn, total: int, label: str, quiet: bool):
    if quiet:
        return fn(None)
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        return fn(lambda _e: bar.advance(task))


def _print(report, summary) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(f"[bold]{report.path}[/bold]: {len(report.episodes)} episodes, quality score {report.score:.3f}")
    model = report.context.get("action_model")
    if model:
        con.print(f"action relation: {model['relation']} (explained dims {model['explained_dims']})")
    for f in report.dataset_findings:
        con.print(f"[yellow]{f.line()}[/yellow]")
    counts = report.counts()
    if counts:
        t = Table(title="findings")
        t.add_column("type")
        t.add_column("count", justify="right")
        for k, v in counts.items():
            t.add_row(k, str(v))
        con.print(t)
    bad = [e for e in report.episodes if e.findings]
    for e in bad[:50]:
        con.print(f"episode {e.episode} (score {e.score:.2f}, {e.length} frames)")
        for f in e.findings[:8]:
            color = {"error": "red", "warning": "yellow"}.get(f.severity, "white")
            con.print(f"  [{color}]{f.line()}[/{color}]")
    if len(bad) > 50:
        con.print(f"... {len(bad) - 50} more episodes with findings (use --json)")
    if not bad:
        con.print("[green]no findings[/green]")
    if summary is not None:
        con.print(f"fix {summary.mode}: wrote {summary.destination} with {len(summary.kept)} episodes, "
                  f"dropped {len(summary.dropped)}, repaired {len(summary.repaired)}")
