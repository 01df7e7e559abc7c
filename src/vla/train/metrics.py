"""Run metrics: one JSON object per line in RUN/metrics.jsonl, a PNG loss curve (matplotlib Agg), and the
window of step losses averaged into each record."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class LossWindow:
    """Running sums of every loss the head returns (logged by name: "loss" and e.g. "l1", "accuracy")
    over the steps since the last record, with the clock and data-wait counter at its start."""

    def __init__(self, t0: float, wait0: float) -> None:
        self.t0, self.wait0, self.n = t0, wait0, 0
        self.sums: dict[str, float] = {}

    def add(self, losses: dict[str, Any]) -> None:
        """Add one step's losses (scalar tensors or numbers)."""
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value.detach() if hasattr(value, "detach") else value)
        self.n += 1

    def means(self) -> dict[str, float]:
        return {key: total / self.n for key, total in sorted(self.sums.items())}


class MetricsLog:
    """Appends records to metrics.jsonl (flushed per line); ``plot`` draws loss.png from the file."""

    def __init__(self, run: Path, truncate_after: int | None = None) -> None:
        self.path = run / "metrics.jsonl"
        if truncate_after is not None and self.path.exists():  # resume: drop records past the checkpoint
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= truncate_after]
            self.path.write_text("".join(f"{line}\n" for line in kept))
        self._f = self.path.open("a")

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def plot(self, out: Path) -> None:
        records = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        train = [r for r in records if "loss" in r]
        if not train:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss (normalized)")
        evals = [r for r in records if "eval/success_rate" in r]
        if evals:
            ax2 = ax.twinx()
            ax2.plot([r["step"] for r in evals], [r["eval/success_rate"] for r in evals], "o-", color="tab:green",
                     label="eval success")
            ax2.set_ylabel("success rate")
            ax2.set_ylim(0, 1)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right")
        fig.tight_layout()
        tmp = out.with_name(f".{out.name}.tmp.png")
        fig.savefig(tmp)
        plt.close(fig)
        os.replace(tmp, out)
