"""``python -m vla.train ...``: the train command alone (handy under torchrun: ``-m vla.train``)."""

import typer

from .commands import register

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
register(app)

if __name__ == "__main__":
    app()
