"""Helpers shared by CLI commands: turning library errors into one clear exit message."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer


def fail(message: object) -> None:
    """Print ``error: message`` (one line) in red and exit with code 2."""
    text = " ".join(str(message).split("\n"))
    typer.secho(f"error: {text}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@contextlib.contextmanager
def fail_on_dataset_error() -> Iterator[None]:
    """Print a user-facing error (DatasetError, ConversionError: any VlaError) and exit 2, no traceback.

    A MemoryError is reported the same way: it means an input asked for more than the machine has."""
    from vla.errors import VlaError

    try:
        yield
    except VlaError as e:
        fail(e)
    except MemoryError:
        fail("out of memory while reading the input (raise the limits in vla.data.limits only for trusted data)")
