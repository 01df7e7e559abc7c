"""Errors raised by the dataset store: each names the file, the field and what was expected."""

from __future__ import annotations

from pathlib import Path

from vla.errors import VlaError


class DatasetError(VlaError):
    """A dataset on disk (or a frame handed to the writer) is not what it should be."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ProvenanceError(DatasetError):
    """An episode's provenance is missing a required field or holds an invalid value."""
