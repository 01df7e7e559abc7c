"""CLI: ``vla view DIR [--episode N] --out page.html``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def view(
        path: Path = typer.Argument(..., help="Dataset folder."),
        episode: int | None = typer.Option(None, "--episode", help="Episode index (default: the first)."),
        out: Path = typer.Option(..., "--out", help="HTML file to write (self-contained, no network)."),
        report: Path | None = typer.Option(None, help="Findings from this `vla audit --out` report."),
        no_audit: bool = typer.Option(False, "--no-audit", help="Do not run the audit (no findings shown)."),
        width: int = typer.Option(256, help="Frame width in pixels in the page."),
    ) -> None:
        """Write one HTML page of an episode: frames, scrubber, action/state plots, findings, provenance."""
        import json

        from vla.cli_util import fail, fail_on_dataset_error
        from vla.data.viewer.page import build_page

        rep = None
        if report is not None:
            from vla.data.audit import AuditReport

            try:
                rep = AuditReport.from_dict(json.loads(report.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as e:
                fail(f"{report}: not an audit report written by `vla audit --out` ({type(e).__name__}: {e})")
        with fail_on_dataset_error():
            try:
                html = build_page(path, episode, out, report=rep, run_audit=not no_audit, max_width=width)
            except ValueError as e:
                fail(e)
        typer.echo(f"wrote {out} ({len(html) / 1e6:.1f} MB)")
