"""The base of every user-facing error: the CLI prints it as one ``error: ...`` line and exits 2."""

from __future__ import annotations


class VlaError(Exception):
    """An input (file, flag, mapping) is not what it should be; the message says what and where."""
