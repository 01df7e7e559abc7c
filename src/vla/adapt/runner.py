"""``adapt()``: rounds of rollouts with monitored expert takeovers, growing data, fine-tuning and evaluation.

Per round r (1..N), starting from the policy of round r - 1 (round 0: the given policy):

1. roll the policy out on the suite's tasks (``--episodes-per-round`` in all, spread evenly over the tasks; seeds
   from the adaptation range, ``vla.sim.seeds.adaptation_seed``), in worker processes (``vla.adapt.episodes``);
2. keep interventions (dagger, both) and successful autonomous episodes (filtered, both); discard the rest
   (counted); append the kept ones to DIR/dataset, audit it, add it to DIR/catalog.sqlite;
3. fine-tune from the round r - 1 policy for ``--steps-per-round`` steps on the original training dataset (only
   the episodes the original run selected with ``episodes`` / ``max_episodes``) plus DIR/dataset
   (``TrainConfig.init_policy`` / ``extra_datasets``);
4. evaluate (``vla.eval.runner.evaluate``, train instructions, evaluation seeds) and rewrite DIR/adapt.json and
   DIR/report.html (atomically), so a crash keeps the finished rounds.

A round's new episodes stay in their own dataset (DIR/rounds/rNN/new) until the round is evaluated; only then are
they merged into DIR/dataset. So DIR/dataset always holds exactly the finished rounds, and ``resume=True``
(``vla adapt ... --resume``, the same settings, ``--rounds`` may grow) continues after the last finished round:
the interrupted round's folder is removed and that round runs again, with the same seeds.

The baseline (``baseline="every"``): after round r, as many scripted demonstrations per task as that round added,
on the same round's scenes, go into DIR/baseline/dataset; the baseline policy is fine-tuned the same way (from
its own round r - 1 policy, same steps) and evaluated the same way. ``"last"``: one fine-tune of N x steps from
the starting policy on all of them after the last round. ``"none"``: no baseline.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla.errors import VlaError

MODES = ("dagger", "filtered", "both")
TEACHERS = ("expert",)
BASELINES = ("every", "last", "none")
# MetaWorld: the hand position moves with the motion commands; the gripper is left out of motion and progress
DEFAULT_SIGNALS = {"window": 10, "state_dims": [0, 1, 2], "motion_dims": [0, 1, 2]}


class AdaptError(VlaError, ValueError):
    """A setting of ``vla adapt`` is wrong (names the flag and what is expected)."""


@dataclass
class AdaptSettings:
    policy: str
    suite: str
    rounds: int
    episodes_per_round: int
    out: str
    teacher: str = "expert"
    mode: str = "both"
    steps_per_round: int = 500
    eval_episodes: int = 10          # evaluation episodes per task after every round
    workers: int = 2
    max_steps: int = 400             # policy steps per rollout (and per evaluation episode)
    expert_steps: int = 300          # steps the expert gets after a takeover
    steps_after_success: int = 10
    monitor: str | None = None       # calibration JSON; default RUN/monitor.json, else calibrated here
    alpha: float = 0.2               # false-alarm rate of a calibration made here
    dataset: str | None = None       # the policy's training dataset; default: from RUN/train_config.json
    baseline: str = "every"
    seed: int = 0                    # adaptation seeds (scenes) and fine-tuning seeds
    eval_seed: int = 0
    lr: float | None = None          # default: the original run's lr
    batch_size: int | None = None    # default: the original run's batch size
    progress: bool = True
    resume: bool = False             # continue the run in ``out`` after its last finished round
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Plan:
    """What validation resolved: paths, cameras, the original train settings, the monitor."""

    policy_dir: Path
    run_name: str
    dataset: Path
    cameras: tuple[str, ...]
    image_size: int
    tasks: tuple[str, ...]
    task_index: dict[str, int]
    per_task: dict[str, int]
    train: dict[str, Any]
    calibration: Any
    calibration_source: str | None
    signal_config: dict[str, Any]
    episodes: list[int] | None = None  # the original run's episodes of ``dataset`` (None: all of them)


# ----------------------------------------------------------------------------------------- validation
def _fail(flag: str, message: str) -> AdaptError:
    return AdaptError(f"{flag}: {message}")


def plan(s: AdaptSettings) -> _Plan:
    """Check every setting before anything is written; AdaptError names the flag."""
    from vla.models.serialization import resolve_policy_dir
    from vla.serve.monitor import MonitorCalibration
    from vla.sim import make_suite
    from vla.sim.seeds import MAX_ADAPT_EPISODES, MAX_ADAPT_ROUNDS

    if s.mode not in MODES:
        raise _fail("--mode", f"expected one of {', '.join(MODES)}, got {s.mode!r}")
    if s.teacher not in TEACHERS:
        raise _fail("--teacher", f"expected one of {', '.join(TEACHERS)} (the scripted MetaWorld expert), "
                                 f"got {s.teacher!r}")
    if s.baseline not in BASELINES:
        raise _fail("--baseline", f"expected one of {', '.join(BASELINES)}, got {s.baseline!r}")
    if not 1 <= s.rounds < MAX_ADAPT_ROUNDS:
        raise _fail("--rounds", f"expected 1 .. {MAX_ADAPT_ROUNDS - 1}, got {s.rounds}")
    for flag, v in (("--steps-per-round", s.steps_per_round), ("--eval-episodes", s.eval_episodes),
                    ("--workers", s.workers), ("--max-steps", s.max_steps), ("--expert-steps", s.expert_steps)):
        if not isinstance(v, int) or v < 1:
            raise _fail(flag, f"expected a positive integer, got {v!r}")
    if s.steps_after_success < 0:
        raise _fail("--steps-after-success", f"expected >= 0, got {s.steps_after_success}")
    if not 0 < s.alpha < 1:
        raise _fail("--alpha", f"expected a rate in (0, 1), got {s.alpha}")
    try:
        suite = make_suite(s.suite)
    except ValueError as exc:
        raise _fail("--suite", str(exc)) from None
    n_tasks = len(suite.tasks)
    if not n_tasks <= s.episodes_per_round < MAX_ADAPT_EPISODES:
        raise _fail("--episodes-per-round", f"expected {n_tasks} .. {MAX_ADAPT_EPISODES - 1} (at least one rollout "
                                            f"per task of {suite.name}), got {s.episodes_per_round}")
    out = Path(s.out)
    if s.resume:
        if not (out / "adapt.json").is_file():
            raise _fail("--resume", f"{out / 'adapt.json'} does not exist: nothing to resume")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise _fail("--out", f"{out} exists and is not an empty folder; choose a new one (or --resume)")
    try:
        policy_dir = resolve_policy_dir(s.policy)
    except FileNotFoundError as exc:
        raise _fail("--policy", str(exc)) from None
    run_dir = policy_dir.parent if policy_dir.name == "policy" else policy_dir
    train: dict[str, Any] = {}
    tc = run_dir / "train_config.json"
    if tc.is_file():
        try:
            train = json.loads(tc.read_text())
        except ValueError as exc:
            raise _fail("--policy", f"{tc}: not JSON ({exc})") from None
    dataset = s.dataset or train.get("dataset")
    if not dataset:
        raise _fail("--dataset", f"no training dataset known for {policy_dir} (no {tc}); pass --dataset DIR")
    from vla.data import Dataset, DatasetError

    try:
        ds = Dataset.open(dataset)
    except (DatasetError, OSError) as exc:
        raise _fail("--dataset", f"{dataset}: cannot open ({exc})") from None
    cameras = tuple(k.removeprefix("observation.images.") for k in ds.camera_keys)
    from vla.models import PolicyConfig

    pcfg = PolicyConfig.load(policy_dir / "config.json")
    missing = [c for c in pcfg.cameras if c not in cameras]
    if missing or not cameras:
        raise _fail("--dataset", f"{dataset} has cameras {list(cameras)}; the policy needs {list(pcfg.cameras)}")
    if any(ds.features[k]["dtype"] != "video" for k in ds.camera_keys):
        raise _fail("--dataset", f"{dataset}: cameras stored as images; vla adapt appends video datasets "
                                 "(collect with `vla collect metaworld`)")
    image_size = int(ds.features[ds.camera_keys[0]]["shape"][0])
    cal, source, signals = None, None, dict(DEFAULT_SIGNALS)
    candidates = [Path(s.monitor)] if s.monitor else [run_dir / "monitor.json", policy_dir / "monitor.json"]
    for path in candidates:
        if path.is_file() or s.monitor:
            try:
                raw = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise _fail("--monitor", f"{path}: cannot read the calibration ({exc})") from None
            cal = MonitorCalibration.from_dict(raw, str(path))
            signals = {**signals, **(raw.get("signal_config") or {})}
            source = str(path)
            break
    per_task = {t: s.episodes_per_round // n_tasks + (i < s.episodes_per_round % n_tasks)
                for i, t in enumerate(suite.tasks)}
    episodes = None
    same_dataset = s.dataset is None or Path(s.dataset).absolute() == Path(str(train.get("dataset"))).absolute()
    if same_dataset and (train.get("episodes") is not None or train.get("max_episodes")):
        from vla.train.episode_select import select_episodes

        try:
            episodes = select_episodes([e.index for e in ds.episodes], train.get("episodes"),
                                       train.get("max_episodes"), str(dataset))
        except ValueError as exc:
            raise _fail("--policy", f"{tc}: {exc}") from None
    return _Plan(policy_dir, run_dir.name, Path(dataset).absolute(), cameras, image_size, tuple(suite.tasks),
                 {t: suite.task_index(t) for t in suite.tasks}, per_task, train, cal, source, signals, episodes)


# ----------------------------------------------------------------------------------------- rollouts
def _pool_run(fn_name: str, jobs: list, config: dict[str, Any], workers: int, label: str, progress: bool) -> list:
    """Run ``vla.adapt.episodes.<fn_name>`` over ``jobs`` (in-process with one worker), with a progress bar."""
    import multiprocessing as mp

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vla.adapt import episodes

    results = []
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn())
    with Progress(*columns, disable=not progress) as bar:
        tid = bar.add_task(label, total=len(jobs), info="")

        def done(r) -> None:
            results.append(r)
            ok = sum(x.success for x in results)
            taken = sum(x.expert_success is not None for x in results)
            bar.update(tid, advance=1, info=f"policy success {ok}/{len(results)}, takeovers {taken}")

        if not jobs:
            return results
        if workers == 1:
            episodes.init_worker(config)
            for job in jobs:
                done(getattr(episodes, fn_name)(job))
        else:
            with mp.get_context("spawn").Pool(min(workers, len(jobs)), initializer=episodes.init_worker,
                                              initargs=(config,)) as pool:
                for r in pool.imap_unordered(getattr(episodes, fn_name), jobs, chunksize=1):
                    done(r)
    return sorted(results, key=lambda r: (r.task, r.index))


def _signal_dicts(signals: np.ndarray) -> list[dict[str, float]]:
    from vla.serve.monitor_signals import SIGNALS

    return [dict(zip(SIGNALS, map(float, row), strict=True)) for row in signals]


def _success_signals(results: list) -> list[list[dict[str, float]]]:
    """The monitor signals of the successful autonomous episodes, up to the success step."""
    return [_signal_dicts(r.signals[: r.success_step + 1]) for r in results if r.success and r.expert_success is None]


def _offline_alarm(cal, r) -> int | None:
    """The step where the calibrated monitor would have raised its first alarm (before any success)."""
    end = r.success_step + 1 if r.success else len(r.signals)
    if end == 0:
        return None
    above = np.flatnonzero(cal.scores(_signal_dicts(r.signals[:end])) > cal.threshold)
    return int(above[0]) if above.size else None


# ----------------------------------------------------------------------------------------- the loop
class _Adaptation:
    def __init__(self, s: AdaptSettings, p: _Plan) -> None:
        self.s, self.p = s, p
        self.out = Path(s.out).absolute()
        self.dataset = self.out / "dataset"
        self.catalog = self.out / "catalog.sqlite"
        self.cal = p.calibration
        self.cal_source = p.calibration_source
        self.pending_success: list[list[dict[str, float]]] = []
        self.audits: dict[str, list] = {}  # growing dataset -> audit reports of its episodes, in order
        self.audit_fps: dict[str, float] = {}
        from rich.console import Console

        self.console = Console(quiet=not s.progress)
        self.result: dict[str, Any] = {"rounds": [], "baseline": None, "initial": None,
                                       "settings": self._settings()}

    def _settings(self) -> dict[str, Any]:
        s, p = self.s, self.p
        return {**{k: v for k, v in asdict(s).items() if k not in ("extra", "resume")},
                "policy_dir": str(p.policy_dir),
                "original_dataset": str(p.dataset), "cameras": list(p.cameras), "image_size": p.image_size,
                "tasks": list(p.tasks), "rollouts_per_task": p.per_task, "signal_config": p.signal_config,
                "monitor_source": p.calibration_source}

    # ---- bookkeeping
    def save(self) -> None:
        from vla.adapt.report import write_report
        from vla.data.atomic import write_json_atomic

        write_json_atomic(self.out / "adapt.json", self.result)
        write_report(self.result, self.out)

    def evaluate(self, policy: Path, out: Path) -> dict[str, Any]:
        from vla.eval.runner import evaluate

        s = self.s
        rep = evaluate(policy, suite=s.suite, episodes_per_task=s.eval_episodes, out=out, split="train",
                       workers=s.workers, max_steps=s.max_steps, seed=s.eval_seed, videos=False,
                       progress=s.progress)
        tasks = {t: {k: v[k] for k in ("success_rate", "successes", "episodes", "ci95")}
                 for t, v in rep["tasks"].items()}
        return {"success_rate": rep["success_rate"], "tasks": tasks, "report": str(out / "report.json")}

    def fine_tune(self, init: Path, datasets: list[Path], out: Path, steps: int, seed: int) -> Path:
        from vla.train.config import TrainConfig
        from vla.train.loop import train

        t, s = self.p.train, self.s
        cache = self.out / "cache"
        for d in datasets:  # the cache of an earlier version of a growing dataset is never used again
            _prune_cache(cache, d)
        warmup = min(int(t.get("warmup_steps", 500)), steps // 10)
        ema = min(float(t.get("ema_decay", 0.999)), max(0.9, 1.0 - 10.0 / steps))
        cfg = TrainConfig(
            dataset=str(self.p.dataset), extra_datasets=[str(d) for d in datasets], out=str(out), policy={},
            # the original run's episodes of its dataset only: a policy trained on 10 demos per task must not be
            # handed the rest of the dataset by its fine-tunes
            episodes=self.p.episodes,
            init_policy=str(init), steps=steps, batch_size=s.batch_size or int(t.get("batch_size", 64)),
            lr=s.lr or float(t.get("lr", 3e-4)), weight_decay=float(t.get("weight_decay", 1e-2)),
            warmup_steps=warmup, min_lr_ratio=float(t.get("min_lr_ratio", 0.05)),
            grad_clip=float(t.get("grad_clip", 1.0)), ema_decay=ema, seed=seed, log_every=max(1, min(50, steps)),
            checkpoint_every=steps, keep_checkpoints=1, cache_dir=str(cache), num_threads=t.get("num_threads"),
            device=t.get("device", "auto"), progress=s.progress)
        train(cfg)
        return out / "policy"

    def worker_config(self, policy: Path) -> dict[str, Any]:
        s, p = self.s, self.p
        return {"policy": str(policy), "cameras": list(p.cameras), "image_size": p.image_size,
                "max_steps": s.max_steps, "expert_steps": s.expert_steps, "steps_after_success": s.steps_after_success,
                "mode": s.mode, "calibration": self.cal.to_dict() if self.cal is not None else None,
                "signal_config": p.signal_config, "torch_threads": 1}

    # ---- one round
    def rollouts(self, round_: int, policy: Path) -> tuple[list, dict[str, Any]]:
        """Roll out, intervene, calibrate if needed; returns the results and the round's counts."""
        from vla.adapt.episodes import DAGGER_MODES, AdaptJob, TakeoverJob
        from vla.serve.monitor import MonitorError, calibrate
        from vla.sim.seeds import adaptation_seed

        s, p = self.s, self.p
        jobs = [AdaptJob(t, k, adaptation_seed(s.seed, round_, p.task_index[t], k))
                for t in p.tasks for k in range(p.per_task[t])]
        config = self.worker_config(policy)
        calibrated_before = self.cal is not None
        results = _pool_run("rollout", jobs, config, s.workers, f"round {round_} rollouts", s.progress)
        info: dict[str, Any] = {"calibration": None, "replay_mismatches": 0}
        if self.cal is None:
            self.pending_success += _success_signals(results)
            try:
                cal = calibrate(self.pending_success, alpha=s.alpha)
            except MonitorError as exc:
                info["calibration"] = {"status": f"not yet calibrated: {exc}"}
            else:
                self.cal, self.cal_source = cal, str(self.out / "monitor.json")
                cal.save(self.out / "monitor.json")
                info["calibration"] = {"status": f"calibrated on {len(self.pending_success)} successful rollouts "
                                                 f"(rounds <= {round_})", "threshold": cal.threshold,
                                       "alpha": cal.alpha}
        if not calibrated_before and self.cal is not None and s.mode in DAGGER_MODES:
            # deferred takeovers: where the monitor would have fired, replay to that step and let the expert act
            takeovers, by_key = [], {}
            for r in results:
                t = _offline_alarm(self.cal, r)
                r.alarm_step = t
                if t is not None:
                    r.recorded = None
                    takeovers.append(TakeoverJob(r.task, r.index, r.seed, r.actions[: t + 1]))
                    by_key[(r.task, r.index)] = r
            for tr in _pool_run("takeover", takeovers, config, s.workers, f"round {round_} takeovers", s.progress):
                r = by_key[(tr.task, tr.index)]
                r.expert_success, r.recorded = tr.expert_success, tr.recorded
                if r.alarm_step + 1 < len(r.states):
                    # the replayed scene must reach the state the policy's rollout was in after the alarm step
                    info["replay_mismatches"] += int(not np.allclose(tr.extra["replayed_state"],
                                                                     r.states[r.alarm_step + 1], atol=1e-5))
        if self.cal is not None:
            info["calibration"] = info["calibration"] or {"status": f"from {self.cal_source}",
                                                          "threshold": self.cal.threshold, "alpha": self.cal.alpha}
        return results, info

    def keep(self, round_: int, results: list, policy: Path) -> tuple[list, dict[str, Any]]:
        """The episodes to write (frames, provenance) and the per-task counts."""
        from vla.adapt.store import episode_provenance
        from vla.sim.experts import expert_id

        p, s = self.p, self.s
        kept, tasks = [], {t: {"rollouts": 0, "autonomous_successes": 0, "alarms": 0, "interventions": 0,
                               "interventions_kept": 0, "policy_rollouts_kept": 0, "episodes_added": 0,
                               "discarded": 0} for t in p.tasks}
        discarded = {"failed_without_alarm": 0, "intervention_failed": 0, "success_not_kept": 0}
        collector = f"{p.run_name}/round-{round_:02d}"
        for r in results:
            c = tasks[r.task]
            c["rollouts"] += 1
            c["autonomous_successes"] += int(r.success and r.expert_success is None)
            c["alarms"] += int(r.alarm_step is not None)
            c["interventions"] += int(r.expert_success is not None)
            rec = r.recorded
            if rec is None:
                c["discarded"] += 1
                why = ("intervention_failed" if r.expert_success is False else
                       "success_not_kept" if r.success else "failed_without_alarm")
                discarded[why] += 1
                continue
            extra = {"task": r.task, "rollout": r.index, "success_step": rec.success_step,
                     "start_step": rec.start_step, "mode": s.mode, "policy": str(policy)}
            if rec.method == "intervention":
                c["interventions_kept"] += 1
                extra["takeover_step"] = rec.start_step
                prov = episode_provenance("intervention", expert_id(r.task), r.task, r.seed, round_, p.cameras,
                                          p.image_size, s.steps_after_success, {**extra, "policy_id": collector})
            else:
                c["policy_rollouts_kept"] += 1
                prov = episode_provenance("policy_rollout", collector, r.task, r.seed, round_, p.cameras,
                                          p.image_size, s.steps_after_success, extra)
            c["episodes_added"] += 1
            kept.append(({"states": rec.states, "actions": rec.actions, "images": rec.images,
                          "instruction": r.instruction}, prov))
        return kept, {"tasks": tasks, "discarded": discarded}

    def stage(self, part: Path, episodes: list, audit_out: Path) -> tuple[Path | None, dict[str, Any] | None]:
        """Write ``episodes`` as the dataset ``part`` and audit them (report at ``audit_out``); (part, summary)."""
        from vla.adapt.store import audit_summary, write_episodes
        from vla.models.serialization import atomic_write_text

        if not episodes:
            return None, None
        shutil.rmtree(part, ignore_errors=True)
        write_episodes(part, episodes, self.p.cameras, self.p.image_size)
        report, summary = audit_summary(part)
        atomic_write_text(audit_out, report.to_json())
        summary["report"] = str(audit_out)
        return part, summary

    def commit(self, target: Path, part: Path | None, summary: dict[str, Any] | None) -> None:
        """Merge a staged ``part`` into ``target``, drop it, and update the catalog entry (per-episode quality from
        the audits of every round)."""
        from vla.adapt.store import catalog_add, merge_datasets

        if part is None or summary is None:
            return
        offset = _episodes(target)
        merge_datasets([target, part] if target.exists() else [part], target)
        shutil.rmtree(part, ignore_errors=True)
        self._remember_audit(target, Path(summary["report"]), offset)
        summary["catalog"] = catalog_add(self.catalog, target, self._merged_audit(target))["action"]

    def _remember_audit(self, target: Path, report_path: Path, offset: int) -> None:
        from vla.data.audit import AuditReport, EpisodeReport

        report = AuditReport.from_dict(json.loads(report_path.read_text()))
        self.audit_fps[str(target)] = report.fps
        self.audits.setdefault(str(target), []).extend(
            EpisodeReport(e.episode + offset, e.length, e.score, e.findings) for e in report.episodes)

    def _merged_audit(self, target: Path) -> Any:
        from vla.data.audit import AuditReport
        from vla.data.audit.scoring import dataset_score

        earlier = self.audits[str(target)]
        return AuditReport(str(target), self.audit_fps[str(target)], dataset_score(earlier, []), list(earlier))

    def baseline_demos(self, round_: int, counts: dict[str, int]) -> list:
        """``counts[task]`` scripted demonstrations per task on the round's adaptation scenes."""
        from vla.adapt.store import episode_provenance
        from vla.sim import MetaWorldEnv
        from vla.sim.experts import expert_id
        from vla.sim.rollout import run_expert_episode
        from vla.sim.seeds import MAX_ADAPT_EPISODES, adaptation_seed

        p, s = self.p, self.s
        out = []
        for task in p.tasks:
            want = counts.get(task, 0)
            if not want:
                continue
            got, k = 0, 0
            with MetaWorldEnv(task, cameras=p.cameras, image_size=p.image_size,
                              max_steps=s.max_steps + s.expert_steps) as env:
                while got < want and k < min(MAX_ADAPT_EPISODES, 3 * want + 3):
                    seed = adaptation_seed(s.seed, round_, p.task_index[task], k)
                    ep = run_expert_episode(env, seed, k, s.steps_after_success)
                    k += 1
                    if not ep.success:
                        continue
                    got += 1
                    prov = episode_provenance("scripted", expert_id(task), task, seed, round_, p.cameras,
                                              p.image_size, s.steps_after_success,
                                              {"task": task, "success_step": ep.success_step, "baseline": True})
                    out.append(({"states": ep.states, "actions": ep.actions, "images": ep.images,
                                 "instruction": ep.instruction}, prov))
        return out

    # ---- driver
    def resume(self) -> tuple[int, Path, Path, dict[str, int]]:
        """State after the last finished round of the run in ``out``: (that round, its policy, the baseline's
        policy, the baseline's demos per task so far). Removes what an interrupted round left."""
        s, p = self.s, self.p
        saved = json.loads((self.out / "adapt.json").read_text())
        now = self._settings()
        differ = sorted(k for k in now if k not in ("rounds", "progress") and saved["settings"].get(k) != now[k])
        if differ:
            raise _fail("--resume", f"settings differ from {self.out / 'adapt.json'}: "
                                    + ", ".join(f"{k} (was {saved['settings'].get(k)!r}, now {now[k]!r})"
                                                for k in differ))
        rounds = saved["rounds"]
        done = len(rounds)
        if done > s.rounds:
            raise _fail("--rounds", f"{self.out} already has {done} finished rounds; ask for at least that many")
        expected = rounds[-1]["dataset_episodes"] if rounds else 0
        if _episodes(self.dataset) != expected:
            raise _fail("--resume", f"{self.dataset} holds {_episodes(self.dataset)} episodes, the finished rounds "
                                    f"{expected}: it was changed outside vla adapt")
        self.result = {**saved, "settings": now}
        if self.cal is None and (self.out / "monitor.json").is_file():
            from vla.serve.monitor import MonitorCalibration

            self.cal = MonitorCalibration.from_dict(json.loads((self.out / "monitor.json").read_text()),
                                                    str(self.out / "monitor.json"))
            self.cal_source = str(self.out / "monitor.json")
        pending = self.out / "pending_success.json"
        if self.cal is None and pending.is_file():
            self.pending_success = json.loads(pending.read_text())
        base = (saved.get("baseline") or {}).get("rounds") or []
        offsets: dict[str, int] = {}
        for target, folder, recs in ((self.dataset, self.out / "rounds", rounds),
                                     (self.out / "baseline" / "dataset", self.out / "baseline", base)):
            for rec in recs:
                report = folder / f"r{rec['round']:02d}" / "audit.json"
                if rec.get("audit") and report.is_file():
                    self._remember_audit(target, report, offsets.get(str(target), 0))
                    offsets[str(target)] = rec["dataset_episodes"]
        if s.baseline == "every" and len(base) < done:  # the baseline of the last round did not finish
            self.result["rounds"] = rounds = rounds[: len(base)]
            done = len(base)
            if _episodes(self.dataset) != (rounds[-1]["dataset_episodes"] if rounds else 0):
                raise _fail("--resume", f"round {done + 1} finished but its baseline did not, and its episodes are "
                                        f"already in {self.dataset}; start a new run")
        for folder in (self.out / "rounds", self.out / "baseline"):
            for stale in sorted(folder.glob("r[0-9][0-9]")) if folder.is_dir() else []:
                if int(stale.name[1:]) > done:
                    shutil.rmtree(stale, ignore_errors=True)
        policy = Path(rounds[-1]["policy"]) if rounds else p.policy_dir
        base_policy = Path(base[done - 1]["policy"]) if s.baseline == "every" and done else p.policy_dir
        counts = {t: sum(rec["tasks"][t]["episodes_added"] for rec in rounds) for t in p.tasks}
        self.console.print(f"resuming {self.out} after round {done}")
        return done, policy, base_policy, counts

    def run(self) -> dict[str, Any]:
        s, p = self.s, self.p
        self.out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        self.console.print(f"[bold]vla adapt[/bold]: {p.policy_dir} on {s.suite}, {s.rounds} round(s) x "
                           f"{s.episodes_per_round} rollouts, mode {s.mode}, baseline {s.baseline}")
        if s.resume:
            done, policy, base_policy, base_counts = self.resume()
        else:
            self.result["initial"] = {**self.evaluate(p.policy_dir, self.out / "initial" / "eval"),
                                      "minutes": (time.perf_counter() - t0) / 60}
            self.console.print(f"round 0 (the given policy): success {self.result['initial']['success_rate']:.3f}")
            self.save()
            done, policy, base_policy = 0, p.policy_dir, p.policy_dir
            base_counts = {t: 0 for t in p.tasks}
        for r in range(done + 1, s.rounds + 1):
            times: dict[str, float] = {}
            t_round = time.perf_counter()
            results, info = self.rollouts(r, policy)
            times["rollouts"] = time.perf_counter() - t_round
            t1 = time.perf_counter()
            kept, counts = self.keep(r, results, policy)
            rdir = self.out / "rounds" / f"r{r:02d}"
            rdir.mkdir(parents=True, exist_ok=True)
            part, audit = self.stage(rdir / "new", kept, rdir / "audit.json")
            times["write_audit"] = time.perf_counter() - t1
            t1 = time.perf_counter()
            extra = [d for d in (self.dataset, part) if d is not None and d.exists()]
            policy = self.fine_tune(policy, extra, rdir / "train", s.steps_per_round, s.seed * 1000 + r)
            times["train"] = time.perf_counter() - t1
            t1 = time.perf_counter()
            ev = self.evaluate(policy, rdir / "eval")
            times["eval"] = time.perf_counter() - t1
            self.commit(self.dataset, part, audit)  # the round is finished: its episodes join DIR/dataset
            tasks = {t: {**ev["tasks"][t], **counts["tasks"][t]} for t in p.tasks}
            n_roll = len(results)
            interventions = sum(c["interventions"] for c in counts["tasks"].values())
            added = {t: c["episodes_added"] for t, c in counts["tasks"].items()}
            record = {
                "round": r, "success_rate": ev["success_rate"], "tasks": tasks, "interventions": interventions,
                "intervention_rate": interventions / n_roll if n_roll else 0.0,
                "episodes_added": sum(added.values()),
                "interventions_kept": sum(c["interventions_kept"] for c in counts["tasks"].values()),
                "policy_rollouts_kept": sum(c["policy_rollouts_kept"] for c in counts["tasks"].values()),
                "rollouts": n_roll,
                "rollout_success_rate": sum(x.success and x.expert_success is None for x in results) / n_roll,
                "alarms": sum(x.alarm_step is not None for x in results), "discarded": counts["discarded"],
                "dataset_episodes": _episodes(self.dataset), "audit": audit, "monitor": info["calibration"],
                "replay_mismatches": info["replay_mismatches"], "policy": str(policy), "eval": ev["report"],
                "minutes": (time.perf_counter() - t_round) / 60,
                "minutes_by_stage": {k: round(v / 60, 3) for k, v in times.items()},
            }
            self.result["rounds"].append(record)
            self.console.print(
                f"round {r}/{s.rounds}: success {ev['success_rate']:.3f}, {interventions} interventions / {n_roll} "
                f"rollouts, {record['episodes_added']} episodes added ({record['dataset_episodes']} in all), "
                f"{record['minutes']:.1f} min")
            self.save()
            self._save_pending()
            for t, n in added.items():
                base_counts[t] += n
            if s.baseline == "every":
                base_policy = self.baseline_round(r, added, base_policy, s.steps_per_round, base_counts)
        if s.baseline == "last":
            self.baseline_last(base_counts)
        self.result["minutes"] = (time.perf_counter() - t0) / 60
        self._verdict()
        self.save()
        return self.result

    def _save_pending(self) -> None:
        """Keep the successful rollouts' signals while the monitor is not calibrated yet (for --resume)."""
        from vla.data.atomic import write_json_atomic

        path = self.out / "pending_success.json"
        if self.cal is None and self.pending_success:
            write_json_atomic(path, self.pending_success)
        else:
            path.unlink(missing_ok=True)

    def _baseline_block(self) -> dict[str, Any]:
        if self.result["baseline"] is None:
            self.result["baseline"] = {"mode": self.s.baseline, "rounds": [],
                                       "description": "the same number of extra scripted demonstrations per task, "
                                                      "on the same scenes, fine-tuned the same way"}
        return self.result["baseline"]

    def baseline_round(self, r: int, added: dict[str, int], init: Path, steps: int, totals: dict[str, int]) -> Path:
        t0 = time.perf_counter()
        target = self.out / "baseline" / "dataset"
        demos = self.baseline_demos(r, added)
        bdir = self.out / "baseline" / f"r{r:02d}"
        bdir.mkdir(parents=True, exist_ok=True)
        part, audit = self.stage(bdir / "new", demos, bdir / "audit.json")
        extra = [d for d in (target, part) if d is not None and d.exists()]
        policy = self.fine_tune(init, extra, bdir / "train", steps, self.s.seed * 1000 + r)
        ev = self.evaluate(policy, bdir / "eval")
        self.commit(target, part, audit)
        self._baseline_block()["rounds"].append({
            "round": r, "success_rate": ev["success_rate"], "tasks": ev["tasks"], "episodes_added": len(demos),
            "demos_requested": sum(added.values()), "dataset_episodes": _episodes(target), "audit": audit,
            "policy": str(policy), "eval": ev["report"], "minutes": (time.perf_counter() - t0) / 60})
        self.console.print(f"baseline round {r}: success {ev['success_rate']:.3f} with {_episodes(target)} extra "
                           f"demonstrations")
        self.save()
        return policy

    def baseline_last(self, totals: dict[str, int]) -> None:
        t0 = time.perf_counter()
        target = self.out / "baseline" / "dataset"
        demos = []
        for r, rec in enumerate(self.result["rounds"], start=1):
            demos += self.baseline_demos(r, {t: v["episodes_added"] for t, v in rec["tasks"].items()})
        (self.out / "baseline").mkdir(parents=True, exist_ok=True)
        part, audit = self.stage(self.out / "baseline" / "new", demos, self.out / "baseline" / "audit.json")
        steps = self.s.steps_per_round * self.s.rounds
        extra = [d for d in (target, part) if d is not None and d.exists()]
        policy = self.fine_tune(self.p.policy_dir, extra, self.out / "baseline" / "train", steps, self.s.seed * 1000)
        ev = self.evaluate(policy, self.out / "baseline" / "eval")
        self.commit(target, part, audit)
        self._baseline_block()["rounds"].append({
            "round": self.s.rounds, "success_rate": ev["success_rate"], "tasks": ev["tasks"],
            "episodes_added": len(demos), "demos_requested": sum(totals.values()), "dataset_episodes": len(demos),
            "audit": audit, "steps": steps, "policy": str(policy), "eval": ev["report"],
            "minutes": (time.perf_counter() - t0) / 60})

    def _verdict(self) -> None:
        rounds, base = self.result["rounds"], self.result["baseline"]
        if not rounds:
            return
        final = rounds[-1]["success_rate"]
        summary: dict[str, Any] = {"initial_success_rate": self.result["initial"]["success_rate"],
                                   "final_success_rate": final,
                                   "gain": final - self.result["initial"]["success_rate"],
                                   "episodes_added": sum(x["episodes_added"] for x in rounds)}
        if base and base["rounds"]:
            b = base["rounds"][-1]["success_rate"]
            summary.update(baseline_final_success_rate=b, beats_baseline=final > b,
                           verdict=(f"adaptation {final:.3f} vs extra demonstrations {b:.3f}: adaptation "
                                    + ("beats the baseline" if final > b else "does NOT beat the baseline")))
        self.result["summary"] = summary


def _episodes(path: Path) -> int:
    """Episodes of a dataset folder (0 when it does not exist yet)."""
    if not path.exists():
        return 0
    from vla.data import Dataset

    return Dataset.open(path).num_episodes


def _prune_cache(cache: Path, dataset: Path) -> None:
    """Delete the training caches built from ``dataset`` (an earlier version of a growing dataset)."""
    if not cache.is_dir():
        return
    target = str(dataset.resolve())
    for d in cache.iterdir():
        meta = d / "meta.json"
        try:
            if meta.is_file() and json.loads(meta.read_text()).get("dataset") == target:
                shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):
            continue


def adapt(settings: AdaptSettings) -> dict[str, Any]:
    """Run the adaptation loop (module docstring); returns the content of DIR/adapt.json."""
    p = plan(settings)
    os.environ.setdefault("MUJOCO_GL", "egl")
    return _Adaptation(settings, p).run()
