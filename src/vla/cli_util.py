"""Helpers shared by CLI commands: turning library errors into clear exit messages."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer


@contextlib.contextmanager
def fail_on_dataset_error() -> Iterator[None]:
    """Print a DatasetError (file + problem) in red and exit with code 2 instead of a traceback."""
    from vla.data.errors import DatasetError

    try:
        yield
    except DatasetError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from e
