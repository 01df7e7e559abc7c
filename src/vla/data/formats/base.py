"""The reader interface every format implements, and small helpers they share.

A reader is cheap to construct and picklable. `tasks()` yields small work items in output order
(a file, a demo, a raw record) without decoding anything heavy; `load(task)` does the decoding and
returns the task's episodes. `convert` runs `load` in worker processes, a bounded number of tasks in
flight, so memory stays bounded by (workers x in-flight) episodes whatever the input size.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from vla.data.formats.episode import SourceEpisode, SourceInfo


class Reader(ABC):
    """A source of episodes in one format."""

    info: SourceInfo

    @abstractmethod
    def tasks(self) -> Iterator[Any]:
        """Work items in output order (picklable)."""

    @abstractmethod
    def load(self, task: Any) -> list[SourceEpisode]:
        """Decode one work item into its episodes (runs in a worker process)."""

    def describe(self, task: Any) -> str:
        """Where a work item comes from, for error messages."""
        return str(task)


@lru_cache(maxsize=256)
def sha256_file(path: str) -> str:
    """sha256 of a file's bytes (cached per process)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def natural_key(name: str) -> list[Any]:
    """Sort key that orders demo_2 before demo_10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def source_dict(fmt: str, path: Path | str, **extra: Any) -> dict[str, Any]:
    """Provenance `source` block: format, path, sha256 and whatever the source tells."""
    p = Path(path)
    out: dict[str, Any] = {"format": fmt, "path": str(p)}
    out["sha256"] = sha256_file(str(p.resolve())) if p.is_file() else None
    out.update({k: v for k, v in extra.items() if v is not None})
    return out
