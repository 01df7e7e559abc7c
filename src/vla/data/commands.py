"""CLI commands of the store: `vla info`."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def info(
        path: Path = typer.Argument(..., help="Dataset folder (ours, LeRobot v3.0 or v2.1)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    ) -> None:
        """Show a dataset's episodes, frames, features, tasks, provenance, missing episodes and videos."""
        from vla.cli_util import fail_on_dataset_error
        from vla.data.dataset import Dataset
        from vla.data.info import dataset_summary

        with fail_on_dataset_error():
            summary = dataset_summary(Dataset.open(path))
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
            return
        _print_summary(summary)


def _print_summary(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(f"[bold]{s['path']}[/bold]  ({s['codebase_version']})")
    con.print(
        f"episodes {s['episodes']}  frames {s['frames']}  fps {s['fps']:g}  robot_type {s['robot_type']}  "
        f"size {s['size_bytes'] / 1e6:.1f} MB"
    )
    if s["missing_episodes"]:
        m = s["missing_episodes"]
        shown = ", ".join(map(str, m[:20])) + (" ..." if len(m) > 20 else "")
        con.print(f"[yellow]{len(m)} of {s['listed_episodes']} listed episodes are missing on disk: {shown}[/yellow]")
    if s["missing_videos"]:
        mv = s["missing_videos"]
        con.print(f"[yellow]{len(mv)} video file(s) cannot be read (low-dimensional data is served; these cameras "
                  "cannot be decoded):[/yellow]")
        for v in mv[:20]:
            eps = v["episodes"]
            shown = ", ".join(map(str, eps[:10])) + (" ..." if len(eps) > 10 else "")
            con.print(f"  {v['path']}: {v['problem']}; cameras {', '.join(v['cameras'])}; "
                      f"{len(eps)} episode(s): {shown}", markup=False)
        if len(mv) > 20:
            con.print(f"  ... {len(mv) - 20} more")
    for f in s["nonstandard_features"]:
        found = repr(f["found"]) if f["found"] else "none"
        con.print(f"[yellow]feature names: expected {f['expected']!r} ({f['what']}), found {found}[/yellow]")
    t = Table(title="features")
    t.add_column("name")
    t.add_column("dtype")
    t.add_column("shape")
    for k, v in s["features"].items():
        t.add_row(k, v["dtype"], str(v["shape"]))
    con.print(t)
    con.print(f"tasks ({len(s['tasks'])}):")
    for task in s["tasks"][:20]:
        con.print(f"  - {task}")
    if len(s["tasks"]) > 20:
        con.print(f"  ... {len(s['tasks']) - 20} more")
    p = s["provenance"]
    con.print(f"provenance: {p['episodes_with_provenance']} episodes with provenance")
    for key in ("collection_methods", "collectors", "hardware", "licenses", "source_formats"):
        if p[key]:
            con.print(f"  {key}: " + ", ".join(f"{k or '-'} ({v})" for k, v in p[key].items()))
