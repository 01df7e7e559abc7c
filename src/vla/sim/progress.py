"""Progress over kept episodes for ``vla collect``: a rich bar on a terminal, plain lines in a log.

A bar drawn with carriage returns is unreadable in a log file and rich draws nothing at all when
stderr is not a terminal, so there ``ProgressBar`` prints one line per ``every`` (a fraction of the
total, 5 % by default) to stderr instead: kept/total, the task being collected, rejections, elapsed
time and an estimate of the time left. Stdout stays free for ``--json``.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Progress over ``total`` kept episodes; ``enabled=False`` makes every method a no-op."""

    def __init__(self, total: int, enabled: bool, *, stream: TextIO | None = None, every: float = 0.05):
        self._total = max(1, total)
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled
        self._rich = None
        self._done = 0
        self._desc = "collecting"
        self._step = max(1, round(self._total * every))
        self._next_line = self._step
        self._t0 = time.monotonic()
        if enabled and self._stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._rich = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), console=Console(file=self._stream))
            self._id = self._rich.add_task(self._desc, total=total)

    def __enter__(self) -> ProgressBar:
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()

    def advance(self, n: int) -> None:
        self._done += n
        if self._rich is not None:
            self._rich.advance(self._id, n)
        elif self._enabled and (self._done >= self._next_line or self._done >= self._total):
            self._next_line = (self._done // self._step + 1) * self._step
            self._line()

    def describe(self, task: str, rejected: int) -> None:
        self._desc = f"{task} (rejected {rejected})"
        if self._rich is not None:
            self._rich.update(self._id, description=self._desc)

    def _line(self) -> None:
        elapsed = time.monotonic() - self._t0
        left = elapsed / self._done * (self._total - self._done) if self._done else float("nan")
        print(f"[collect] {self._done}/{self._total} episodes ({100 * self._done / self._total:.0f}%), "
              f"{self._desc}, {elapsed / 60:.1f} min elapsed, ~{left / 60:.1f} min left",
              file=self._stream, flush=True)
