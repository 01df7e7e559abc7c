"""The `vla` command: one subcommand per stage (data, sim, train, eval, serve)."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="vla",
    help="Vision-language-action robot policies: data, training, evaluation and serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Vision-language-action robot policies: data, training, evaluation and serving."""


# Each module defines register(app); heavy imports happen inside the commands.
COMMAND_MODULES = [
    "vla.data.commands",
    "vla.data.formats.commands",
    "vla.data.audit.commands",
    "vla.data.catalog.commands",
    "vla.data.viewer.commands",
    "vla.sim.commands",
    "vla.train.commands",
    "vla.eval.commands",
    "vla.eval.monitor_commands",
    "vla.adapt.commands",
    "vla.serve.commands",
    "vla.quickstart",
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """The ``vla`` entry point: any user-facing error (a ``VlaError``) a command lets through becomes one
    ``error: ...`` line and exit code 2, the same as the errors commands catch themselves."""
    import sys

    from vla.cli_util import EXIT_USAGE, print_error
    from vla.errors import VlaError

    try:
        app()
    except VlaError as exc:
        print_error(exc)
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
