"""CLI: ``vla catalog add|search|stats|export`` (``--catalog PATH`` or ``$VLA_CATALOG``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

CATALOG_HELP = "Catalog file (default: $VLA_CATALOG or ~/.local/share/vla/catalog.sqlite)."


def _query(embodiment, robot, task_category, scene, min_quality, license_, text, dataset, limit, query=None):
    from vla.data.catalog.store import Query

    q = Query.parse(query) if query else Query(limit=limit)
    for k, v in (("embodiment", embodiment), ("robot", robot), ("task_category", task_category), ("scene", scene),
                 ("min_quality", min_quality), ("license", license_), ("text", text), ("dataset", dataset)):
        if v is not None:
            setattr(q, k, v)
    return q


def register(app: typer.Typer) -> None:
    cat_app = typer.Typer(help="Index datasets and episodes; search by embodiment, task, scene, quality, licence.",
                          no_args_is_help=True)
    app.add_typer(cat_app, name="catalog")

    @cat_app.command("add")
    def add(
        paths: list[Path] = typer.Argument(..., help="Dataset folders."),
        catalog: Path | None = typer.Option(None, "--catalog", help=CATALOG_HELP),
        run_audit: bool = typer.Option(False, "--audit", help="Run the audit and store quality scores."),
        report: Path | None = typer.Option(None, "--report", help="Quality from this `vla audit --out` report."),
        force: bool = typer.Option(False, help="Re-index even when the fingerprint is unchanged."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Add datasets (idempotent: unchanged datasets are skipped, changed ones re-indexed)."""
        from vla.cli_util import fail_on_dataset_error
        from vla.data.catalog.ingest import add_dataset, load_report
        from vla.data.catalog.store import Catalog

        rep = load_report(report) if report else None
        out = []
        with fail_on_dataset_error(), Catalog(catalog) as cat:
            for p in paths:
                r = add_dataset(cat, p, run_audit=run_audit, report=rep, force=force)
                out.append(r)
                if not as_json:
                    n = f" ({r['episodes']} episodes)" if r["episodes"] is not None else ""
                    typer.echo(f"{r['action']}: {r['path']}{n}")
        if as_json:
            typer.echo(json.dumps(out, indent=2))

    @cat_app.command("search")
    def search(
        embodiment: str | None = typer.Option(None, help="fixed_base_arm, bimanual, mobile_manipulator, humanoid, ..."),
        robot: str | None = typer.Option(None),
        task_category: str | None = typer.Option(None, help="pick-and-place, articulated-object, assembly, ..."),
        scene: str | None = typer.Option(None, help="low, medium, high"),
        min_quality: float | None = typer.Option(None),
        license_: str | None = typer.Option(None, "--license"),
        text: str | None = typer.Option(None, help="Words that must all appear in the instruction."),
        dataset: str | None = typer.Option(None, help="Only this dataset (path or folder name)."),
        limit: int = typer.Option(50),
        catalog: Path | None = typer.Option(None, "--catalog", help=CATALOG_HELP),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Find episodes by facets and instruction words."""
        from vla.cli_util import fail_on_dataset_error
        from vla.data.catalog.store import Catalog

        q = _query(embodiment, robot, task_category, scene, min_quality, license_, text, dataset, limit)
        with fail_on_dataset_error(), Catalog.existing(catalog) as cat:
            rows = cat.search(q)
            total, frames = cat.count(q)
        if as_json:
            typer.echo(json.dumps({"total_episodes": total, "total_frames": frames, "episodes": rows}, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"{total} episodes, {frames} frames (showing {len(rows)})")
        for c in ("dataset", "ep", "frames", "task category", "scene", "quality", "robot", "instruction"):
            t.add_column(c)
        for r in rows:
            qv = "-" if r["quality"] is None else f"{r['quality']:.2f}"
            t.add_row(r["dataset"], str(r["episode_index"]), str(r["length"]), r["task_category"] or "-",
                      r["scene_complexity"] or "-", qv, r["robot"] or "-", (r["instruction"] or "")[:60])
        Console().print(t)

    @cat_app.command("stats")
    def stats(
        catalog: Path | None = typer.Option(None, "--catalog", help=CATALOG_HELP),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Counts of datasets, episodes and frames per facet."""
        from vla.cli_util import fail_on_dataset_error
        from vla.data.catalog.store import Catalog

        with fail_on_dataset_error(), Catalog.existing(catalog) as cat:
            s = cat.stats()
        if as_json:
            typer.echo(json.dumps(s, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        con = Console()
        con.print(f"{s['catalog']} (schema v{s['schema_version']}): {s['datasets']} datasets, "
                  f"{s['episodes']} episodes, {s['frames']} frames; audited episodes "
                  f"{s['quality']['audited_episodes']}")
        for facet, vals in s["facets"].items():
            t = Table(title=facet)
            t.add_column("value")
            t.add_column("episodes", justify="right")
            t.add_column("frames", justify="right")
            for v, c in vals.items():
                t.add_row(v, str(c["episodes"]), str(c["frames"]))
            con.print(t)

    @cat_app.command("export")
    def export_cmd(
        dst: Path = typer.Argument(..., help="New dataset folder."),
        query: str | None = typer.Option(None, "--query", help='e.g. "task_category=articulated-object '
                                                              'min_quality=0.9 text=\'open drawer\'"'),
        embodiment: str | None = typer.Option(None),
        robot: str | None = typer.Option(None),
        task_category: str | None = typer.Option(None),
        scene: str | None = typer.Option(None),
        min_quality: float | None = typer.Option(None),
        license_: str | None = typer.Option(None, "--license"),
        text: str | None = typer.Option(None),
        dataset: str | None = typer.Option(None),
        catalog: Path | None = typer.Option(None, "--catalog", help=CATALOG_HELP),
        overwrite: bool = typer.Option(False),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Build a training dataset from the episodes a query selects."""
        from vla.cli_util import fail_on_dataset_error
        from vla.data.catalog.export import export
        from vla.data.catalog.store import Catalog

        try:
            q = _query(embodiment, robot, task_category, scene, min_quality, license_, text, dataset, None, query)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from e
        with fail_on_dataset_error(), Catalog.existing(catalog) as cat:
            total, _ = cat.count(q)
            if as_json:
                summary = export(cat, q, dst, overwrite)
            else:
                from rich.progress import Progress

                with Progress(transient=True) as bar:
                    task = bar.add_task("exporting", total=total)
                    summary = export(cat, q, dst, overwrite, lambda n: bar.update(task, completed=n))
        msg = f"wrote {summary['destination']}: {summary['episodes']} episodes from {summary['datasets']} dataset(s)"
        typer.echo(json.dumps(summary, indent=2) if as_json else msg)
