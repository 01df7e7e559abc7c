"""Run metrics: one JSON object per line in RUN/metrics.jsonl and a PNG loss curve (matplotlib Agg)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


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
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss (L1, normalized)")
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
