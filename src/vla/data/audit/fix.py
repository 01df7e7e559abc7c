"""``--fix``: write a new dataset without the bad episodes (drop) or with safe repairs (repair).

Repairs are limited to what can be undone without guessing content: timestamps put back in
order (rows sorted by timestamp), duplicated timestamps removed (first row kept), short gaps
(<= ``max_gap`` missing frames) filled by linear interpolation of numeric columns (images: the
previous frame repeated), and short NaN runs in state/action interpolated. Everything else is left
as recorded. Each written episode's provenance gets an ``extra["audit"]`` record: tool, mode,
source dataset and episode, what was repaired, the findings and score before the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.audit.findings import AuditReport
from vla.data.audit.runs import runs

FIX_MODES = ("drop", "repair")
NUMERIC_SKIP = {"timestamp", "frame_index", "episode_index", "index", "task_index"}


@dataclass
class FixSummary:
    mode: str
    source: str
    destination: str
    kept: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    repaired: dict[int, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "source": self.source, "destination": self.destination, "kept": self.kept,
                "dropped": self.dropped, "repaired": {str(k): v for k, v in self.repaired.items()}}


def repair_arrays(ts: np.ndarray, cols: dict[str, np.ndarray], images: dict[str, np.ndarray], fps: float,
                  max_gap: int = 5) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray], list[str]]:
    """Sort, deduplicate and gap-fill one episode. Returns (timestamps, columns, images, actions taken)."""
    done: list[str] = []
    ts = np.asarray(ts, np.float64)
    order = np.argsort(ts, kind="stable")
    if (order != np.arange(len(ts))).any():
        done.append(f"sorted {int((order != np.arange(len(ts))).sum())} rows by timestamp")
    p = 1.0 / fps
    keep = np.ones(len(ts), bool)
    keep[1:] = np.diff(ts[order]) > 1e-3 * p
    if not keep.all():
        done.append(f"removed {int((~keep).sum())} row(s) with a duplicated timestamp")
    idx = order[keep]
    ts = ts[idx]
    cols = {k: v[idx] for k, v in cols.items()}
    images = {k: v[idx] if len(v) == len(keep) else v for k, v in images.items()}
    # gaps: insert interpolated rows where a few frames are missing
    d = np.diff(ts)
    missing = np.round(d / p).astype(int) - 1
    fill = [(i, int(m)) for i, m in enumerate(missing) if 1 <= m <= max_gap]
    if fill:
        new_ts, src_a, src_b, w = [], [], [], []
        for i in range(len(ts)):
            new_ts.append(ts[i])
            src_a.append(i)
            src_b.append(i)
            w.append(0.0)
            m = dict(fill).get(i, 0)
            for k in range(1, m + 1):
                f = k / (m + 1)
                new_ts.append(ts[i] + f * (ts[i + 1] - ts[i]))
                src_a.append(i)
                src_b.append(i + 1)
                w.append(f)
        a, b, wt = np.array(src_a), np.array(src_b), np.array(w)
        out_cols = {}
        for k, v in cols.items():
            if np.issubdtype(v.dtype, np.floating):
                ww = wt.reshape(-1, *([1] * (v.ndim - 1)))
                out_cols[k] = (v[a] * (1 - ww) + v[b] * ww).astype(v.dtype)
            else:
                out_cols[k] = v[a]
        cols = out_cols
        images = {k: v[a] if len(v) == len(ts) else v for k, v in images.items()}
        ts = np.array(new_ts)
        done.append(f"filled {sum(m for _, m in fill)} missing frame(s) in {len(fill)} gap(s) by interpolation")
    # short NaN runs in float columns
    for k, v in cols.items():
        if not np.issubdtype(v.dtype, np.floating) or v.ndim != 2 or k in NUMERIC_SKIP:
            continue
        bad = ~np.isfinite(v)
        if not bad.any():
            continue
        fixed = 0
        for j in np.flatnonzero(bad.any(axis=0)):
            good = ~bad[:, j]
            if good.sum() < 2:
                continue
            for r0, r1 in runs(bad[:, j]):
                if r1 - r0 <= max_gap and r0 > 0 and r1 < len(v):
                    v[r0:r1, j] = np.interp(np.arange(r0, r1), np.flatnonzero(good), v[good, j])
                    fixed += r1 - r0
        if fixed:
            done.append(f"interpolated {fixed} NaN value(s) in {k}")
    return ts, cols, images, done


def fix_dataset(src: Any, dst: str | Path, mode: str, report: AuditReport | None = None,
                min_severity: str = "error", max_gap: int = 5, provenance_defaults: dict | None = None,
                overwrite: bool = False, progress: Any = None) -> FixSummary:
    """Write ``dst`` from ``src`` (path or Dataset): drop bad episodes or repair what is safe."""
    from vla.data import Dataset, DatasetWriter, Provenance
    from vla.data.audit.runner import audit
    from vla.data.errors import DatasetError
    from vla.data.features import user_features

    if mode not in FIX_MODES:
        raise ValueError(f"fix mode must be one of {FIX_MODES}, got {mode!r}")
    ds = Dataset.open(src) if isinstance(src, (str, Path)) else src
    report = report or audit(ds)
    bad = set(report.bad_episodes(min_severity))
    feats = user_features(ds.features)
    names = list(feats)
    use_videos = any(v.get("dtype") == "video" for v in feats.values())
    summary = FixSummary(mode, str(ds.root), str(dst))
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    writer = DatasetWriter(dst, fps=ds.fps, features=feats, robot_type=ds.robot_type or "unknown",
                           embodiment=ds.embodiment, use_videos=use_videos, overwrite=overwrite)
    with writer:
        for info in ds.episodes:
            e = info.index
            if e in set(getattr(ds, "missing_episodes", []) or []):
                continue
            rep = next((r for r in report.episodes if r.episode == e), None)
            if mode == "drop" and e in bad:
                summary.dropped.append(e)
                continue
            cols = ds.episode_columns(e)
            ts = np.asarray(cols.get("timestamp", np.arange(info.length) / ds.fps), np.float64).reshape(-1)
            numeric = {k: np.asarray(cols[k]) for k in names if k in cols}
            images = {k: ds.episode_images(e, k) for k in ds.camera_keys}
            done: list[str] = []
            if mode == "repair":
                ts, numeric, images, done = repair_arrays(ts, numeric, images, ds.fps, max_gap)
            task_idx = cols.get("task_index")
            tasks = ds.tasks
            n = len(ts)
            for i in range(n):
                frame = {k: numeric[k][i] for k in numeric}
                frame.update({k: images[k][min(i, len(images[k]) - 1)] for k in images})
                ti = int(task_idx[min(i, len(task_idx) - 1)]) if task_idx is not None and len(task_idx) else 0
                task = tasks[ti] if 0 <= ti < len(tasks) else (info.tasks[0] if info.tasks else "")
                writer.add_frame(frame, task=task, timestamp=float(ts[i]))
            prov = dict(info.provenance or {})
            for k, v in (provenance_defaults or {}).items():
                prov.setdefault(k, v)
            if not prov.get("collector_id") or not prov.get("collection_method"):
                raise DatasetError(ds.root, f"episode {e} has no provenance collector_id/collection_method; "
                                   "pass provenance defaults (--provenance FILE)")
            extra = dict(prov.get("extra") or {})
            extra["audit"] = {
                "tool": "vla.audit", "mode": mode, "at": stamp, "source_dataset": str(ds.root),
                "source_episode": e, "repairs": done,
                "findings_before": sorted({f.type for f in rep.findings}) if rep else [],
                "score_before": rep.score if rep else None,
            }
            prov["extra"] = extra
            writer.save_episode(Provenance.from_dict(prov))
            summary.kept.append(e)
            if done:
                summary.repaired[e] = done
            if progress is not None:
                progress(e)
    return summary
