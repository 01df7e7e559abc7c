"""Helpers shared by CLI commands: turning library errors into one clear exit message."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

EXIT_USAGE = 2  # the exit code of every user-facing error, as click uses for bad usage


def print_error(message: object) -> None:
    """Print ``error: message`` as one line, in red, on stderr."""
    text = " ".join(str(message).split("\n"))
    typer.secho(f"error: {text}", fg=typer.colors.RED, err=True)


def fail(message: object) -> None:
    """Print ``error: message`` (one line) and exit with code 2 (inside a command)."""
    print_error(message)
    raise typer.Exit(EXIT_USAGE)


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
