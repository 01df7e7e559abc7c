"""Build a training dataset from a catalog selection, through DatasetWriter.

All selected episodes must share one feature layout (same state/action/camera keys and shapes)
and frame rate; otherwise the export stops and names the groups so the query can be narrowed.
Each written episode keeps its provenance, with ``extra["catalog_export"]`` naming the source
dataset and episode.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.catalog.store import Catalog, Query


def _layout(ds: Any) -> tuple:
    from vla.data.features import user_features

    return (ds.fps, tuple(sorted((k, v["dtype"] if v["dtype"] != "image" else "video", tuple(v["shape"]))
                                for k, v in user_features(ds.features).items())))


def export(cat: Catalog, q: Query, dst: str | Path, overwrite: bool = False, progress: Any = None) -> dict[str, Any]:
    """Write the episodes matching ``q`` into a new dataset at ``dst``; returns a summary."""
    from vla.data import Dataset, DatasetWriter, Provenance
    from vla.data.errors import DatasetError
    from vla.data.features import user_features

    rows = cat.search(Query(**{**q.__dict__, "limit": None}))
    if not rows:
        raise DatasetError(Path(dst), "the query selects no episode")
    by_ds: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        by_ds[r["dataset_path"]].append(r["episode_index"])
    opened = {p: Dataset.open(p) for p in by_ds}
    layouts = defaultdict(list)
    for p, ds in opened.items():
        layouts[_layout(ds)].append(p)
    if len(layouts) > 1:
        groups = "; ".join(f"{len(v)} dataset(s) like {Path(v[0]).name} (fps {k[0]:g}, "
                           f"{', '.join(n for n, *_ in k[1])})" for k, v in layouts.items())
        raise DatasetError(Path(dst), f"selected episodes have different layouts: {groups}; narrow the query "
                           "(e.g. --robot or --dataset)")
    first = next(iter(opened.values()))
    feats = user_features(first.features)
    use_videos = any(v.get("dtype") == "video" for v in feats.values())
    written = 0
    with DatasetWriter(dst, fps=first.fps, features=feats, robot_type=first.robot_type or "unknown",
                       embodiment=first.embodiment, use_videos=use_videos, overwrite=overwrite) as w:
        for p, idx in by_ds.items():
            ds = opened[p]
            for e in sorted(idx):
                info = ds.episode(e)
                cols = ds.episode_columns(e)
                images = {k: ds.episode_images(e, k) for k in ds.camera_keys}
                ts = np.asarray(cols["timestamp"], np.float64).reshape(-1)
                task_idx = cols.get("task_index")
                for i in range(info.length):
                    frame = {k: cols[k][i] for k in feats if k in cols}
                    frame.update({k: v[i] for k, v in images.items()})
                    ti = int(task_idx[i]) if task_idx is not None else 0
                    task = ds.tasks[ti] if 0 <= ti < len(ds.tasks) else (info.tasks[0] if info.tasks else "")
                    w.add_frame(frame, task=task, timestamp=float(ts[i]))
                prov = dict(info.provenance or {})
                extra = dict(prov.get("extra") or {})
                extra["catalog_export"] = {"source_dataset": str(ds.root), "source_episode": e}
                prov["extra"] = extra
                w.save_episode(Provenance.from_dict(prov))
                written += 1
                if progress is not None:
                    progress(written)
    return {"destination": str(Path(dst).absolute()), "episodes": written, "datasets": len(by_ds),
            "frames": int(sum(r["length"] for r in rows))}
