"""Episode findings: too short or too long for the dataset, missing instruction, duplicates.

Lengths are compared with the median of episodes of the same task when the task has at least
MIN_PEERS episodes, else with the dataset median. Duplicates are episodes whose state and action
arrays match another, earlier episode to within a tiny tolerance.
"""

from __future__ import annotations

import hashlib

import numpy as np

from vla.data.audit.episode import EpisodeArrays
from vla.data.audit.findings import Finding, make_finding

SHORT_FACTOR = 3.0    # shorter than median / 3 -> too short
LONG_FACTOR = 3.0     # longer than median * 3 -> too long
MIN_LENGTH = 2        # an episode with fewer frames is always too short
MIN_PEERS = 3
PLACEHOLDERS = {"", "none", "null", "nan", "n/a", "task", "todo", "default", "unknown", "<none>"}


def reference_lengths(lengths: dict[int, int], tasks: dict[int, str]) -> dict[int, float]:
    """Per episode, the usual length it is compared with: the median of the other episodes of its
    task when there are at least MIN_PEERS of them, else the median of all other episodes."""
    by_task: dict[str, list[int]] = {}
    for e in lengths:
        by_task.setdefault(tasks.get(e, ""), []).append(e)
    out = {}
    for e in lengths:
        peers = [lengths[o] for o in by_task[tasks.get(e, "")] if o != e]
        if len(peers) < MIN_PEERS:
            peers = [n for o, n in lengths.items() if o != e]
        out[e] = float(np.median(peers)) if peers else 0.0
    return out


def check_length(ep: EpisodeArrays, ref: float, n_episodes: int, overall: float = 0.0) -> list[Finding]:
    """Compare with the usual length ``ref`` (task peers) and, more loosely, the dataset median."""
    n = ep.length
    if overall > 0 and ref > 0:
        # a task whose peers are themselves cut short must not hide a cut episode
        ref = max(ref, overall / 1.5) if n < ref else min(ref, overall * 1.5)
    if n < MIN_LENGTH:
        return [make_finding("episode.too_short", ep.index, (0, n), f"only {n} frame(s)", ep.timestamps)]
    if n_episodes < 3 or ref <= 0:
        return []
    if n < ref / SHORT_FACTOR:
        return [make_finding("episode.too_short", ep.index, (0, n),
                             f"{n} frames, under a third of the usual {ref:.0f}", ep.timestamps)]
    if n > ref * LONG_FACTOR:
        return [make_finding("episode.too_long", ep.index, (0, n),
                             f"{n} frames, over three times the usual {ref:.0f}", ep.timestamps)]
    return []


def check_instruction(ep: EpisodeArrays) -> list[Finding]:
    good = [t for t in ep.tasks if t is not None and str(t).strip().lower() not in PLACEHOLDERS]
    if good:
        return []
    what = "no instruction" if not ep.tasks else f"placeholder instruction {ep.tasks[0]!r}"
    return [make_finding("episode.missing_instruction", ep.index, None, f"{what} for this episode")]


def content_key(ep: EpisodeArrays, scale: dict[str, np.ndarray]) -> str | None:
    """Hash of state/action quantized to 1e-4 of the dataset's spread (None when nothing to hash)."""
    h = hashlib.sha1(str(ep.length).encode())
    got = False
    for name, arr in (("state", ep.state), ("action", ep.action)):
        if arr is None or arr.size == 0:
            continue
        q = np.round(np.nan_to_num(arr / scale[name] * 1e4, nan=0.0, posinf=0.0, neginf=0.0)).astype(np.int64)
        h.update(name.encode())
        h.update(q.tobytes())
        got = True
    return h.hexdigest() if got else None


def find_duplicates(episodes: list[EpisodeArrays], scale: dict[str, np.ndarray]) -> dict[int, int]:
    """Map duplicate episode -> the earlier episode it repeats."""
    seen: dict[str, int] = {}
    groups: dict[int, list[EpisodeArrays]] = {}
    out: dict[int, int] = {}
    for ep in episodes:
        k = content_key(ep, scale)
        if k is None or ep.length < MIN_LENGTH:
            continue
        if k in seen:
            out[ep.index] = seen[k]
            continue
        seen[k] = ep.index
        # near duplicates that straddle a quantization step: compare arrays of equal length
        for other in groups.get(ep.length, []):
            if _close(ep, other, scale):
                out[ep.index] = other.index
                break
        groups.setdefault(ep.length, []).append(ep)
    return out


def _close(a: EpisodeArrays, b: EpisodeArrays, scale: dict[str, np.ndarray]) -> bool:
    for name in ("state", "action"):
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None or x.shape != y.shape:
            return False
        d = np.abs(np.nan_to_num(x) - np.nan_to_num(y)) / scale[name]
        if not (d.max() < 1e-3):
            return False
    return True


def check_duplicate(ep: EpisodeArrays, dups: dict[int, int]) -> list[Finding]:
    if ep.index not in dups:
        return []
    return [make_finding("episode.duplicate", ep.index, (0, ep.length),
                         f"same states and actions as episode {dups[ep.index]}", ep.timestamps,
                         duplicate_of=dups[ep.index])]
