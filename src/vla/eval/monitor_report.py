"""The ``monitor`` and ``recovery`` sections of report.json: how well the failure monitor predicts an episode's
failure, what it costs, and what recovery gains.

"At f of the episode" is measured on the step budget: after the first ``k = ceil(f * max_steps)`` control
steps. The prediction at k is the highest score seen in those k steps. Two populations:

- ``auroc`` (the headline): the episodes still running after k steps (``steps > k``: not yet succeeded),
  labelled by whether they end in failure. This is the question a monitor answers on a robot: of the
  episodes under way, which will fail? Successes that finished earlier need no prediction.
- ``auroc_all``: every episode, an episode that ended before k contributing its whole record. It mixes in
  the episode's length (a success that finished early had fewer steps to raise its maximum), so it reads
  higher than ``auroc``.

On the episode's own clock (as SAFE and FAIL-Detect plot it): after the first ``ceil(f * steps)`` steps of each
episode, whatever its length, every episode counts:

- ``auroc_own``: the highest score in that part of the episode;
- ``auroc_own_mean``: the mean score over it. A failure runs to the step budget and a success stops early, so
  a failure's part is longer; the maximum grows with length, the mean does not, so ``auroc_own_mean`` is the
  one that separates by score level and not by duration.

AUROC is the Mann-Whitney probability that a failure scores above a success (ties count 1/2); None when
either class is empty. Each raw signal's own AUROC (its maximum over the same steps) stands beside the
combined score. Lead time: control steps from a failure's first alarm to its end (the step budget).
False alarms: the fraction of successful episodes with an alarm before they succeeded (Wilson 95%).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vla.eval.metrics import percentile_ms, wilson_interval

FRACTIONS = (0.25, 0.5, 0.75)


def auroc(positive: list[float] | np.ndarray, negative: list[float] | np.ndarray) -> float | None:
    """P(score of a random positive > score of a random negative) + 0.5 P(tie), by ranks; None if a class is
    empty."""
    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if pos.size == 0 or neg.size == 0:
        return None
    both = np.concatenate([pos, neg])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(both.size, np.float64)
    sorted_vals = both[order]
    i = 0
    while i < both.size:  # average ranks over ties
        j = i
        while j + 1 < both.size and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[:pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))


def prefix_max(values: list[float | None], k: int) -> float:
    """Highest non-missing value among the first ``k`` (0 when there is none)."""
    x = np.array([np.nan if v is None else v for v in values[:k]], np.float64)
    x = x[np.isfinite(x)]
    return float(x.max()) if x.size else 0.0


def paired_difference_interval(pairs: list[tuple[bool, bool]], z: float = 1.959964) -> tuple[float, float, float]:
    """(difference, low, high) of success(after) - success(before) over paired episodes: Newcombe's (1998)
    method 10, from the Wilson intervals of both rates and the correlation of the pairs (its numerator
    ``ad - bc`` reduced by ``n / 2`` when positive, Newcombe's correction)."""
    n = len(pairs)
    if n == 0:
        return 0.0, -1.0, 1.0
    a = sum(bool(s and r) for s, r in pairs)          # both succeed
    b = sum(bool(r and not s) for s, r in pairs)      # only after
    c = sum(bool(s and not r) for s, r in pairs)      # only before
    d = n - a - b - c
    p_after, p_before = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, z)
    l2, u2 = wilson_interval(a + c, n, z)
    denom = math.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    num = a * d - b * c
    num = max(num - n / 2, 0.0) if num > 0 else num
    phi = num / denom if denom > 0 else 0.0
    phi = max(-1.0, min(1.0, phi))
    diff = p_after - p_before
    dl = math.sqrt(max(0.0, (p_after - l1) ** 2 - 2 * phi * (p_after - l1) * (u2 - p_before) + (u2 - p_before) ** 2))
    du = math.sqrt(max(0.0, (u1 - p_after) ** 2 - 2 * phi * (u1 - p_after) * (p_before - l2) + (p_before - l2) ** 2))
    return diff, max(-1.0, diff - dl), min(1.0, diff + du)


def _auroc_at(results: list, k: int, values) -> tuple[float | None, float | None, int, int]:
    """(auroc over episodes running after k steps, auroc over all, failures running, successes running)."""
    run_pos, run_neg, all_pos, all_neg = [], [], [], []
    for r in results:
        v = prefix_max(values(r), k)
        (all_neg if r.success else all_pos).append(v)
        if r.steps > k:
            (run_neg if r.success else run_pos).append(v)
    return auroc(run_pos, run_neg), auroc(all_pos, all_neg), len(run_pos), len(run_neg)


def prefix_mean(values: list[float | None], k: int) -> float:
    """Mean of the non-missing values among the first ``k`` (0 when there is none)."""
    x = np.array([np.nan if v is None else v for v in values[:k]], np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else 0.0


def _auroc_own(results: list, f: float, values) -> tuple[float | None, float | None]:
    """(auroc of the maximum, auroc of the mean) over the first ceil(f * steps) steps of each episode."""
    pos_max, neg_max, pos_mean, neg_mean = [], [], [], []
    for r in results:
        k = max(1, math.ceil(f * r.steps))
        (neg_max if r.success else pos_max).append(prefix_max(values(r), k))
        (neg_mean if r.success else pos_mean).append(prefix_mean(values(r), k))
    return auroc(pos_max, neg_max), auroc(pos_mean, neg_mean)


def _round(v: float | None, nd: int = 4) -> float | None:
    return None if v is None else round(float(v), nd)


def _section(results: list, max_steps: int, control_rate_hz: float, signals: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"episodes": len(results), "failures": sum(not r.success for r in results), "at": {}}
    for f in FRACTIONS:
        k = math.ceil(f * max_steps)
        a_run, a_all, n_pos, n_neg = _auroc_at(results, k, lambda r: r.monitor["score"])
        own_max, own_mean = _auroc_own(results, f, lambda r: r.monitor["score"])
        per_signal = {}
        for s in signals:
            get = lambda r, s=s: r.monitor["signals"].get(s, [])  # noqa: E731
            run_s, all_s, _, _ = _auroc_at(results, k, get)
            s_max, s_mean = _auroc_own(results, f, get)
            per_signal[s] = {"auroc": _round(run_s), "auroc_all": _round(all_s), "auroc_own": _round(s_max),
                             "auroc_own_mean": _round(s_mean)}
        out["at"][f"{int(f * 100)}%"] = {"step": k, "auroc": _round(a_run), "auroc_all": _round(a_all),
                                         "auroc_own": _round(own_max), "auroc_own_mean": _round(own_mean),
                                         "failures_running": n_pos, "successes_running": n_neg,
                                         "signals": per_signal}
    fails = [r for r in results if not r.success]
    leads = [r.steps - (r.monitor["first_alarm"] + 1) for r in fails if r.monitor["first_alarm"] is not None]
    out["detected_failures"] = len(leads)
    out["detection_rate"] = _round(len(leads) / len(fails)) if fails else None
    out["median_lead_steps"] = _round(float(np.median(leads)), 1) if leads else None
    out["median_lead_s"] = _round(float(np.median(leads)) / control_rate_hz, 3) if leads else None
    succ = [r for r in results if r.success]
    fa = sum(r.monitor["first_alarm"] is not None for r in succ)
    lo, hi = wilson_interval(fa, len(succ))
    out["false_alarms"] = {"episodes": fa, "successes": len(succ), "rate": _round(fa / len(succ)) if succ else None,
                           "ci95": [_round(lo), _round(hi)]}
    cost = [c for r in results for c in r.monitor["cost_s"]]
    sample = [c for r in results for c in r.monitor["sample_s"]]
    out["cost_ms"] = {"step_p50": _round(percentile_ms(cost, 50)), "step_p99": _round(percentile_ms(cost, 99)),
                      "spread_samples_p50": _round(percentile_ms(sample, 50)),
                      "spread_samples_p99": _round(percentile_ms(sample, 99))}
    return out


def monitor_section(results: list, tasks: list[str], max_steps: int, calibration: dict[str, Any],
                    calibration_path: str, control_rate_hz: float) -> dict[str, Any]:
    """report.json's ``monitor``: per task and overall (every episode of every task pooled)."""
    from vla.serve.monitor_signals import SIGNALS

    signals = [s for s in SIGNALS if s in calibration["weights"]]
    src = calibration.get("source") or {}
    cal_tasks = src.get("tasks") or []
    per_task = {t: _section([r for r in results if r.task == t], max_steps, control_rate_hz, signals) for t in tasks}
    for t in tasks:
        per_task[t]["calibrated_on_task"] = t in cal_tasks
    out = {"calibration": calibration_path, "threshold": calibration["threshold"], "alpha": calibration["alpha"],
           "weights": calibration["weights"], "calibration_tasks": cal_tasks,
           "definition": "at f: after the first ceil(f * max_steps) steps; auroc over episodes still running then, "
                         "auroc_all over every episode; auroc_own / auroc_own_mean: the maximum / mean score over the "
                         "first ceil(f * steps) steps of each episode's own length (see vla.eval.monitor_report)",
           "overall": _section(results, max_steps, control_rate_hz, signals), "tasks": per_task}
    held = [r for r in results if cal_tasks and r.task not in cal_tasks]
    out["heldout_tasks"] = _section(held, max_steps, control_rate_hz, signals) if held else None
    return out


def _recovery_block(results: list) -> dict[str, Any]:
    n = len(results)
    k0 = sum(r.success for r in results)
    k1 = sum(r.recovery["success"] for r in results)
    diff, lo, hi = paired_difference_interval([(r.success, r.recovery["success"]) for r in results])
    used = [len(r.recovery["recoveries"]) for r in results]
    return {"episodes": n,
            "without": {"successes": k0, "success_rate": _round(k0 / n) if n else None,
                        "ci95": [_round(x) for x in wilson_interval(k0, n)]},
            "with": {"successes": k1, "success_rate": _round(k1 / n) if n else None,
                     "ci95": [_round(x) for x in wilson_interval(k1, n)]},
            "gain": _round(diff), "gain_ci95": [_round(lo), _round(hi)],
            "gained": sum(r.recovery["success"] and not r.success for r in results),
            "lost": sum(r.success and not r.recovery["success"] for r in results),
            "stopped": sum(bool(r.recovery["stopped"]) for r in results),
            "rerun": sum(bool(r.recovery["rerun"]) for r in results),
            "replay_mismatches": sum(not r.recovery["replay_consistent"] for r in results),
            "recoveries_per_episode": _round(float(np.mean(used)), 3) if used else None,
            "recoveries_histogram": {str(u): used.count(u) for u in sorted(set(used))}}


def recovery_section(results: list, tasks: list[str], config: dict[str, Any]) -> dict[str, Any]:
    """report.json's ``recovery``: success without and with recovery on the same seeds and step budget."""
    return {"strategy": config["strategy"], "budget": config["budget"], "config": config,
            "design": "paired: each episode's monitored run without recovery is the 'without' arm; an episode whose "
                      "run raised an alarm is run again from the same seed with recovery ('with'); one without an "
                      "alarm has the same outcome in both arms",
            "overall": _recovery_block(results),
            "tasks": {t: _recovery_block([r for r in results if r.task == t]) for t in tasks}}
