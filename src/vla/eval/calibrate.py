"""calibrate_monitor(): roll a policy out and calibrate the failure monitor on its successful episodes.

Episode seeds come from the calibration range (``vla.sim.seeds.calibration_seed``), disjoint from collection
and evaluation seeds. Each episode records the raw signals of every step and the policy's readout features
of every chunk. The successful episodes are dealt out in turn (sorted by task, episode) to three parts:
the first fits the ``ood`` signal's ``FeatureBank``; the others get their ``ood`` values from that bank and go
to ``vla.serve.monitor.calibrate``, which fits the signal scales on one and the conformal threshold on the
other. (Without the ``ood`` signal every success goes to ``calibrate``.) ``tasks`` may be a subset of the
suite, so detection can then be measured on tasks held out from calibration.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from vla.serve.monitor import MonitorCalibration, MonitorError, calibrate
from vla.serve.monitor_signals import SIGNALS, FeatureBank, SignalConfig

# MetaWorld: state = hand xyz + gripper opening, action = dx dy dz + gripper; motion is xyz
METAWORLD_SIGNALS = SignalConfig(window=10, state_dims=(0, 1, 2), motion_dims=(0, 1, 2))


def min_threshold_episodes(alpha: float) -> int:
    """The fewest held-out successes for which the conformal quantile at ``alpha`` is finite."""
    n = 1
    while math.ceil((n + 1) * (1 - alpha)) > n:
        n += 1
    return n


def calibration_jobs(suite, tasks: list[str], episodes_per_task: int, seed: int) -> list:
    from vla.eval.rollout import RolloutJob
    from vla.sim.seeds import calibration_seed
    from vla.sim.suites import mt50_tasks

    jobs = []
    for task in tasks:
        instructions = suite.instructions(task, "train")
        t_index = mt50_tasks().index(task)
        for ep in range(episodes_per_task):
            jobs.append(RolloutJob(task, ep, calibration_seed(seed, t_index, ep), instructions[ep % len(instructions)]))
    return jobs


def ood_per_step(features: list[tuple[int, list[float]]], steps: int, bank: FeatureBank) -> list[float]:
    """The ``ood`` value at each step: the distance of the latest chunk's features (chunk step <= step)."""
    out, j, current = [], 0, 0.0
    for t in range(steps):
        while j < len(features) and features[j][0] <= t:
            current = bank.distance(np.asarray(features[j][1]))
            j += 1
        out.append(current)
    return out


def fit_calibration(results: list, alpha: float, signals: list[str], samples: int,
                    config: SignalConfig, source: dict[str, Any]) -> MonitorCalibration:
    """The calibration from rollout results (``RolloutResult`` with ``monitor`` traces); MonitorError if the
    successes are too few."""
    succ = sorted((r for r in results if r.success), key=lambda r: (r.task, r.episode))
    use_ood = "ood" in signals
    bank_part, rest = (succ[0::3], [r for i, r in enumerate(succ) if i % 3]) if use_ood else ([], succ)
    need = 2 * min_threshold_episodes(alpha)
    if len(rest) < need or (use_ood and not bank_part):
        split = "a third for the feature bank, then half the rest each" if use_ood else "half each"
        raise MonitorError(
            f"calibration: {len(succ)} of {len(results)} rollouts succeeded; alpha={alpha} needs at least "
            f"{need + (need // 2 if use_ood else 0)} successful episodes ({split} for the scales and the threshold). "
            "Raise --episodes-per-task or --alpha, or use a stronger policy")
    bank = None
    if use_ood:
        feats = [f for r in bank_part for _, f in r.monitor["features"]]
        if len(feats) < 2:
            raise MonitorError("calibration: the policy gave no readout features for the ood signal; drop ood from "
                               "--signals")
        bank = FeatureBank.fit(np.asarray(feats))
    episodes = []
    for r in rest:
        m = r.monitor
        n = len(m["score"])
        ood = ood_per_step(m["features"], n, bank) if bank is not None else [0.0] * n
        episodes.append([{**{k: m["signals"][k][i] for k in SIGNALS if k in m["signals"]}, "ood": ood[i]}
                         for i in range(n)])
    cal = calibrate(episodes, alpha=alpha, weights=dict.fromkeys(signals, 1.0))
    if not math.isfinite(cal.threshold):
        raise MonitorError(f"calibration: {cal.episodes.get('threshold')} held-out successes are too few for "
                           f"alpha={alpha} (need {min_threshold_episodes(alpha)})")
    bank_dict = None if bank is None else {"mean": bank.mean.tolist(), "precision": bank.precision.tolist()}
    episodes_used = {**cal.episodes, "feature_bank": len(bank_part), "successes": len(succ),
                     "rollouts": len(results)}
    return dataclasses.replace(cal, signal_config=dataclasses.asdict(config), feature_bank=bank_dict,
                               samples=samples, source=source, episodes=episodes_used)


def calibrate_monitor(policy: str | Path, suite: str = "mt10", tasks: list[str] | None = None,
                      episodes_per_task: int = 20, alpha: float = 0.1, out: str | Path | None = None,
                      workers: int = 2, max_steps: int = 400, seed: int = 0, signals: list[str] | None = None,
                      samples: int = 0, progress: bool = True) -> MonitorCalibration:
    """Roll ``policy`` out on ``tasks`` of ``suite`` (all by default) with calibration seeds, calibrate the
    monitor on the successes and write it to ``out`` (default RUN/monitor.json) atomically."""
    from vla.eval.runner import _run
    from vla.models.serialization import resolve_policy_dir
    from vla.sim import make_suite

    if not 0 < alpha < 1:
        raise MonitorError(f"--alpha: expected a false-alarm rate in (0, 1), got {alpha}")
    if episodes_per_task < 1 or workers < 1 or max_steps < 1 or samples < 0:
        raise MonitorError("--episodes-per-task, --workers and --max-steps must be >= 1 and --samples >= 0")
    the_suite = make_suite(suite)
    tasks = list(tasks or the_suite.tasks)
    unknown = [t for t in tasks if t not in the_suite.tasks]
    if unknown:
        raise MonitorError(f"--tasks: {unknown} not in suite {suite!r} (tasks: {', '.join(the_suite.tasks)})")
    if len(set(tasks)) != len(tasks):
        raise MonitorError(f"--tasks: a task is listed twice: {tasks}")
    signals = list(signals) if signals else [s for s in SIGNALS if s != "spread" or samples > 0]
    bad = [s for s in signals if s not in SIGNALS]
    if bad:
        raise MonitorError(f"--signals: unknown {bad}; known: {', '.join(SIGNALS)}")
    if "spread" in signals and samples < 2:
        raise MonitorError("--signals spread needs --samples >= 2 (sampled chunks per query)")
    need = 2 * min_threshold_episodes(alpha) + (min_threshold_episodes(alpha) if "ood" in signals else 0)
    if len(tasks) * episodes_per_task < need:
        raise MonitorError(f"{len(tasks)} task(s) x {episodes_per_task} episodes < {need}: too few even if every "
                           f"episode succeeds, for alpha={alpha}; raise --episodes-per-task or --alpha")
    policy_dir = resolve_policy_dir(policy)
    out = Path(out) if out is not None else (policy_dir.parent if policy_dir.name == "policy" else policy_dir) / \
        "monitor.json"
    if not out.parent.is_dir():
        raise MonitorError(f"--out {out}: the folder {out.parent} does not exist")
    jobs = calibration_jobs(the_suite, tasks, episodes_per_task, seed)
    opts = {"calibration": None, "signal_config": dataclasses.asdict(METAWORLD_SIGNALS), "record_features": True,
            "samples": samples, "recovery": None}
    t0 = time.perf_counter()
    results = _run(jobs, policy_dir, max_steps, None, workers, progress, None, opts)
    source = {"policy": str(policy_dir), "suite": suite, "tasks": tasks, "episodes_per_task": episodes_per_task,
              "seed": seed, "seeds": "calibration range (vla.sim.seeds.calibration_seed)", "max_steps": max_steps,
              "success_rate": sum(r.success for r in results) / len(results),
              "wall_time_s": round(time.perf_counter() - t0, 1)}
    cal = fit_calibration(results, alpha, signals, samples, METAWORLD_SIGNALS, source)
    cal.save(out)
    return cal
