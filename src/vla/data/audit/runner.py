"""``audit()``: run every detector over a dataset (or over plain episode arrays) and score it.

Two passes: first dataset-wide context (action relation fit, robust action bounds, usual
lengths, gripper levels, usual camera lag, duplicate groups, thresholds from the spread of clean
episodes), then per-episode detectors. ``audit_arrays`` works on EpisodeArrays alone (no files);
``audit`` opens a dataset path (or takes an open Dataset) and pulls the arrays through the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vla.data.audit import action_checks as ac
from vla.data.audit import episode_checks as ec
from vla.data.audit import modality_checks as mc
from vla.data.audit import time_checks as tc
from vla.data.audit.action_model import fit_action_model
from vla.data.audit.episode import EpisodeArrays, group_key, load_episodes
from vla.data.audit.findings import AuditReport, EpisodeReport, Finding, make_finding
from vla.data.audit.runs import mad
from vla.data.audit.scoring import dataset_score, episode_score

MIN_GROUP = 3  # episodes of a task needed to use the task's own reference values


def _pooled_std(arrays: list[np.ndarray | None], diff: bool = False) -> np.ndarray | None:
    xs = [np.diff(a, axis=0) if diff else a for a in arrays if a is not None and len(a) > 1]
    if not xs:
        return None
    X = np.concatenate(xs)
    X = X[np.isfinite(X).all(axis=1)]
    if len(X) == 0:
        return None
    s = X.std(axis=0)
    return np.where(s > 1e-12, s, np.inf)


def audit_arrays(
    episodes: list[EpisodeArrays], fps: float, *, path: str = "", action_names: list[str] | None = None,
    gripper: list[int] | None = None, dataset_findings: list[Finding] | None = None,
) -> AuditReport:
    """Audit episodes given as arrays. Returns per-episode findings and scores."""
    states = [e.state for e in episodes]
    actions = [e.action for e in episodes]
    clean_states = [s if s is not None and np.isfinite(s).all() else None for s in states]
    state_step = _pooled_std(clean_states, diff=True)
    action_sd = _pooled_std(actions)
    # --- dataset context
    model = fit_action_model([s if s is not None else None for s in clean_states],
                             [a if s is not None else None for s, a in zip(clean_states, actions, strict=True)]) \
        if any(s is not None and a is not None for s, a in zip(clean_states, actions, strict=True)) else None
    bounds = ac.action_bounds(actions)
    repeat_rate = mc.state_repeat_rate(clean_states)
    gdims = ac.gripper_dims(actions, gripper, action_names)
    glevels = ac.gripper_levels(actions, gdims)
    lengths = {e.index: e.length for e in episodes}
    tasks = {e.index: group_key(e) for e in episodes}
    ref_len = ec.reference_lengths(lengths, tasks)
    med_len = float(np.median(list(lengths.values()))) if lengths else 0.0
    scale = {"state": _pooled_std(states) if _pooled_std(states) is not None else np.ones(1),
             "action": action_sd if action_sd is not None else np.ones(1)}
    scale = {k: np.where(np.isfinite(v), v, 1.0) for k, v in scale.items()}
    dups = ec.find_duplicates(episodes, scale)
    vis = tc.visible_dims(episodes, state_step)
    gain = mc.motion_gain(episodes, state_step, vis)
    lags = {e.index: tc.camera_lags(e, state_step, vis) for e in episodes}
    # reference values per task (episodes of one task share contacts, speeds, camera motion);
    # tasks with fewer than MIN_GROUP episodes use the whole dataset. Copies of earlier episodes
    # are left out of every reference: a repeated demo must not count twice in what is usual.
    groups: dict[str, list[int]] = {}
    for e in episodes:
        if e.index not in dups:
            groups.setdefault(tasks[e.index], []).append(e.index)
    all_idx = [e.index for e in episodes if e.index not in dups]

    def peers(i: int) -> list[int]:
        g = groups.get(tasks[i], [])
        return g if len(g) >= MIN_GROUP else all_idx

    usual_lag: dict[int, dict[str, tuple[float, float]]] = {}
    for i in all_idx:
        usual_lag[i] = {}
        for key in lags.get(i, {}):
            vals = [lags[o][key][0] for o in peers(i) if key in lags.get(o, {})
                    and lags[o][key][1] >= tc.OFFSET_MIN_CORR]
            usual_lag[i][key] = (float(np.median(vals)), mad(vals)) if len(vals) >= 3 else (0.0, 0.0)
    rel = {e.index: ac.relation_stats(e, model) for e in episodes} if model is not None else {}
    summaries = {i: ac.summarize_relation(v, model) for i, v in rel.items() if v}
    th_cache: dict[tuple[int, ...], ac.RelationThresholds] = {}

    def thresholds(i: int) -> ac.RelationThresholds:
        key = tuple(peers(i))
        if key not in th_cache:
            th_cache[key] = ac.peer_thresholds([summaries[o] for o in key if o in summaries])
        return th_cache[key]

    # --- per episode
    reports = []
    for ep in episodes:
        f: list[Finding] = []
        f += tc.check_timestamps(ep, fps)
        f += tc.check_stream_offset(ep, lags.get(ep.index, {}), usual_lag.get(ep.index, {}))
        f += mc.check_missing(ep)
        f += mc.check_nan(ep)
        f += mc.check_frame_counts(ep)
        f += mc.check_frozen_state(ep, action_sd, repeat_rate)
        f += mc.check_frozen_images(ep, state_step, gain, vis)
        if model is not None:
            f += ac.check_relation(ep, rel.get(ep.index, []), thresholds(ep.index), model, action_names)
        f += ac.check_outliers(ep, bounds)
        f += ac.check_gripper(ep, gdims, glevels, fps)
        f += ec.check_length(ep, ref_len.get(ep.index, 0.0), len(episodes), med_len)
        f += ec.check_instruction(ep)
        f += ec.check_duplicate(ep, dups)
        reports.append(EpisodeReport(ep.index, ep.length, episode_score(f), f))
    ds_findings = list(dataset_findings or [])
    context: dict[str, Any] = {
        "action_model": model.to_dict() if model is not None else None,
        "relation_thresholds": {str(k[0]) if len(k) == 1 else f"{len(k)} episodes": {"resid": v.resid, "roll": v.roll}
                                for k, v in th_cache.items()},
        "gripper_dims": gdims, "visible_state_dims": vis, "image_motion_gain": gain,
        "median_length": float(np.median(list(lengths.values()))) if lengths else 0.0,
    }
    return AuditReport(path, fps, dataset_score(reports, ds_findings), reports, ds_findings, context)


def audit(ds_or_path: Any, episodes: list[int] | None = None, with_images: bool = True,
          progress: Any = None) -> AuditReport:
    """Audit a dataset (path or open ``Dataset``): findings per episode, scores, fitted relation."""
    from vla.data import Dataset  # local: keeps the detectors importable without the store

    ds = Dataset.open(ds_or_path) if isinstance(ds_or_path, (str, Path)) else ds_or_path
    eps = []
    for ep in load_episodes(ds, episodes, with_images):
        eps.append(ep)
        if progress is not None:
            progress(ep.index)
    extra: list[Finding] = []
    missing = list(getattr(ds, "missing_episodes", []) or [])
    if missing:
        extra.append(make_finding("modality.missing", None, None,
                                  f"{len(missing)} episode(s) listed in the metadata are absent on disk "
                                  f"(e.g. {missing[:5]})", severity="warning", episodes=missing[:1000]))
    emb = getattr(ds, "embodiment", None) or {}
    names = emb.get("action_names") or _names(ds.features.get("action", {}))
    return audit_arrays(eps, float(ds.fps), path=str(getattr(ds, "root", ds_or_path)), action_names=names,
                        gripper=emb.get("gripper_dims") or None, dataset_findings=extra)


def _names(feature: dict) -> list[str] | None:
    names = feature.get("names") if isinstance(feature, dict) else None
    if isinstance(names, dict):
        names = next(iter(names.values()), None)
    if isinstance(names, list) and names and isinstance(names[0], list):
        names = names[0]
    return [str(n) for n in names] if isinstance(names, list) else None
