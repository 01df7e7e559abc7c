"""A policy's normalization, read from its training dataset: meta/stats.json (computed once, by the writer)
and, for a standardized dataset, the transform recorded in info.json["vla"] (normalization, delta
actions), which the policy undoes at inference so that it acts in robot units. Nothing is computed here.
"""

from __future__ import annotations

from pathlib import Path

from vla.data import Dataset, DatasetError, layout
from vla.data.normalization import ACTION_KEY, STATE_KEY, DatasetTransform
from vla.models import NormalizationStats


def policy_normalization(dataset: str | Path) -> NormalizationStats:
    """NormalizationStats for a policy trained on `dataset`; DatasetError naming the file when the
    statistics are missing or not finite, or when the dataset's transform cannot be undone."""
    root = Path(dataset)
    ds = Dataset.open(root)
    stats_path = root / layout.STATS_PATH
    missing = [k for k in (STATE_KEY, ACTION_KEY) if k not in ds.stats]
    if missing:
        raise DatasetError(stats_path, f"no statistics of {missing} (has {sorted(ds.stats)}); a policy normalizes "
                           "with them: rewrite the dataset with `vla convert` to compute them")
    transform = DatasetTransform.from_info(ds.info, root / layout.INFO_PATH)
    try:
        return NormalizationStats.from_dataset_stats(ds.stats, transform)
    except (KeyError, ValueError) as exc:
        raise DatasetError(stats_path, str(exc)) from exc
