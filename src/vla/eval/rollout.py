"""Policy rollouts in worker processes: one policy and one env per process, reused across episodes.

A worker records the frames of every episode it runs and writes the video of the first success
and the first failure it sees per task (the parent keeps one of each per task).

With a failure monitor (``monitor`` in ``init_worker``), every step is judged: the policy's chunks (and
readout features, and extra samples for the spread signal) go to ``FailureMonitor.on_chunk``, every executed
action to ``FailureMonitor.step``; the episode's trace (score, alarm, raw signals, cost per step) comes back
in ``RolloutResult.monitor``. With a recovery strategy too, an episode whose monitored run raised an alarm is
run again from the same seed with the ``RecoveryController`` acting on the alarm (up to the first alarm the
two runs are the same rollout); its outcome comes back in ``RolloutResult.recovery``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class RolloutJob:
    task: str
    episode: int
    seed: int
    instruction: str


@dataclass
class RolloutResult:
    task: str
    episode: int
    seed: int
    instruction: str
    success: bool
    steps: int
    success_step: int | None
    chunk_s: list[float] = field(default_factory=list)
    step_s: list[float] = field(default_factory=list)
    video: str | None = None
    serve: dict | None = None  # through a server: what the executor, watchdog and safety filter did
    monitor: dict | None = None  # the monitored run's trace (see _Trace.to_dict)
    recovery: dict | None = None  # the run with recovery: success, steps, stopped, recoveries, ...


_STATE: dict = {}


def init_worker(policy_dir: str | None, max_steps: int, video_dir: str | None, torch_threads: int,
                server: dict | None = None, monitor: dict | None = None, sim: dict | None = None) -> None:
    """Pool initializer: load the policy once per process, or connect to ``server`` ({"url", "api_key"}).

    ``monitor``: {"calibration": MonitorCalibration dict or None (None: raw signals only), "signal_config":
    SignalConfig fields (without a calibration), "record_features": bool, "samples": int, "recovery":
    RecoveryConfig fields or None}. ``sim``: the simulator spec of a non-MetaWorld suite (``vla.eval.sims``)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("LP_NUM_THREADS", "1")
    if server is not None:
        from vla.serve.remote_policy import RemotePolicy

        policy = RemotePolicy(server["url"], api_key=server.get("api_key"), timeout_s=server.get("timeout_s", 10.0))
    else:
        import torch

        from vla.models import Policy

        torch.set_num_threads(torch_threads)
        policy = Policy.from_pretrained(policy_dir)
        policy.eval()
    _STATE.clear()
    _STATE.update(policy=policy, max_steps=max_steps, video_dir=video_dir, env=None, recorded=set(),
                  monitor=monitor, sim=sim)


def _env_for(task: str):
    env = _STATE["env"]
    if env is None or env.task != task:
        from vla.eval.sims import make_env

        if env is not None:
            env.close()
        env = make_env(task, tuple(_cameras()), _STATE["policy"].config.image_size, _STATE["max_steps"],
                       _STATE.get("sim"))
        _STATE["env"] = env
    return env


def _robot() -> str | None:
    """The evaluated robot's name for a multi-robot policy (its registry entry), else None."""
    policy = _STATE["policy"]
    if not getattr(policy, "embodiment_names", None):
        return None
    from vla.eval.sims import embodiment_of

    name = embodiment_of(_STATE.get("sim"))
    policy.registry.index(name)  # a robot the policy was not trained on: EmbodimentError naming the known ones
    return name


def _cameras() -> list[str]:
    """The cameras rendered: the policy's, or for a multi-robot policy those of the evaluated robot."""
    policy = _STATE["policy"]
    robot = _robot()
    return list(policy.registry[robot].cameras) if robot is not None else list(policy.config.cameras)


@dataclass
class _Trace:
    """What the monitor said at every step of one run (None score: a recovery step it did not judge)."""

    score: list[float | None] = field(default_factory=list)
    alarm: list[bool] = field(default_factory=list)
    signals: dict[str, list[float]] = field(default_factory=dict)
    kind: list[str] = field(default_factory=list)
    cost_s: list[float] = field(default_factory=list)
    sample_s: list[float] = field(default_factory=list)
    features: list[tuple[int, list[float]]] = field(default_factory=list)

    def first_alarm(self) -> int | None:
        return next((i for i, a in enumerate(self.alarm) if a), None)

    def to_dict(self) -> dict:
        return {"score": self.score, "alarm": self.alarm, "signals": self.signals, "kind": self.kind,
                "cost_s": self.cost_s, "sample_s": self.sample_s, "features": self.features,
                "first_alarm": self.first_alarm()}


def _make_monitor(opts: dict):
    from vla.serve.monitor import FailureMonitor, MonitorCalibration
    from vla.serve.monitor_signals import SignalConfig

    if opts.get("calibration") is not None:
        return FailureMonitor.from_calibration(MonitorCalibration.from_dict(opts["calibration"]))
    cfg = dict(opts.get("signal_config") or {})
    for k in ("state_dims", "motion_dims"):
        if cfg.get(k) is not None:
            cfg[k] = tuple(cfg[k])
    return FailureMonitor(None, SignalConfig(**cfg))


class _PolicySource:
    """``vla.serve.recovery.ActionSource`` over a Policy and the current observation."""

    def __init__(self, policy) -> None:
        self.policy, self.obs = policy, None

    def next_action(self) -> np.ndarray:
        return self.policy.select_action(self.obs)

    def flush(self) -> None:
        self.policy.flush_actions()

    def set_ensembling(self, coeff: float | None) -> None:
        self.policy.set_temporal_ensemble(coeff)


def _episode(job: RolloutJob, record_frames: bool, recovery=None) -> dict:
    """One run of ``job``'s episode (with the monitor, when configured, and ``recovery``, when given)."""
    policy = _STATE["policy"]
    env = _env_for(job.task)
    opts = _STATE.get("monitor")
    monitor = _make_monitor(opts) if opts is not None else None
    samples = int((opts or {}).get("samples") or 0)
    if opts is not None and opts.get("calibration") is not None:
        samples = int(opts["calibration"].get("samples", 0))
    record_features = bool((opts or {}).get("record_features"))
    trace = _Trace() if monitor is not None else None
    chunk_s: list[float] = []
    step_s: list[float] = []
    frames: list[np.ndarray] = []
    now = [0]  # the step the next chunk's action 0 is for
    pending_cost = [0.0]
    original = policy.predict_chunk

    def timed_predict_chunk(obs):
        t0 = time.perf_counter()
        out = original(obs)
        chunk_s.append(time.perf_counter() - t0)
        if monitor is not None:
            feats = getattr(policy, "last_features", None)
            smp = None
            if samples > 0 and hasattr(policy, "resample_last"):
                t1 = time.perf_counter()
                smp = policy.resample_last(samples, seed=(job.seed * 1_000_003 + now[0]) % 2**63)
                trace.sample_s.append(time.perf_counter() - t1)
            t1 = time.perf_counter()
            monitor.on_chunk(out, now[0], features=feats, samples=smp)
            pending_cost[0] += time.perf_counter() - t1
            if record_features and feats is not None:
                trace.features.append((now[0], np.round(feats, 5).tolist()))
        return out

    policy.predict_chunk = timed_predict_chunk
    source = _PolicySource(policy)
    success_step = None
    stopped = False
    alarm = False
    try:
        robot = _robot()
        tag = (lambda o: o) if robot is None else (lambda o: {**o, "embodiment": robot})  # noqa: E731
        cams = _cameras()
        obs, _ = env.reset(seed=job.seed, instruction=job.instruction)
        obs = tag(obs)
        policy.reset(seed=job.seed)  # sampling heads: the episode's noise is reproducible from its seed
        if monitor is not None:
            monitor.reset()
        if recovery is not None:
            recovery.reset(obs["state"])
        steps = 0
        prev_kind = "policy"
        for steps in range(1, _STATE["max_steps"] + 1):
            if record_frames:
                frames.append(np.concatenate([obs["images"][c] for c in cams], axis=1))
            now[0] = steps - 1
            t0 = time.perf_counter()
            if recovery is None:
                action, kind = policy.select_action(obs), "policy"
            else:
                source.obs = obs
                decision = recovery.act(obs["state"], alarm, source)
                action, kind = decision.action, decision.kind
                if decision.stop:
                    stopped = True
            step_s.append(time.perf_counter() - t0)
            if trace is not None:
                t1 = time.perf_counter()
                if kind == "policy":
                    if prev_kind != "policy":
                        monitor.restart()
                    rec = monitor.step(obs["state"], action)
                    score, alarm = rec.score, rec.alarm
                    for k, v in rec.signals.items():
                        trace.signals.setdefault(k, []).append(round(float(v), 5))
                else:
                    monitor.skip()
                    score, alarm = None, False
                    for k in trace.signals:
                        trace.signals[k].append(float("nan"))
                trace.cost_s.append(time.perf_counter() - t1 + pending_cost[0])
                pending_cost[0] = 0.0
                trace.score.append(None if score is None else round(float(score), 5))
                trace.alarm.append(bool(alarm))
                trace.kind.append(kind)
            prev_kind = kind
            if stopped:
                break
            obs, _, terminated, truncated, info = env.step(action)
            obs = tag(obs)
            if info["success"]:
                success_step = steps
                break
            if terminated or truncated:
                break
        if record_frames:
            frames.append(np.concatenate([obs["images"][c] for c in cams], axis=1))
    finally:
        policy.predict_chunk = original
    return {"success": success_step is not None, "steps": steps, "success_step": success_step, "stopped": stopped,
            "chunk_s": chunk_s, "step_s": step_s, "frames": frames, "trace": trace,
            "recoveries": list(recovery.events) if recovery is not None else []}


def run_job(job: RolloutJob) -> RolloutResult:
    """Run one evaluation episode; success = info["success"] at any step (the episode stops there)."""
    policy = _STATE["policy"]
    run = _episode(job, record_frames=bool(_STATE["video_dir"]))
    success = run["success"]
    video = None
    key = (job.task, success)
    if _STATE["video_dir"] and key not in _STATE["recorded"]:
        _STATE["recorded"].add(key)
        video = _write_video(Path(_STATE["video_dir"]), job, success, run["frames"])
    serve = serve_summary(policy.records) if hasattr(policy, "records") else None
    trace = run["trace"]
    recovery = None
    opts = _STATE.get("monitor") or {}
    if trace is not None and opts.get("recovery") is not None:
        recovery = _recovery_run(job, run, opts["recovery"])
    return RolloutResult(job.task, job.episode, job.seed, job.instruction, success, run["steps"],
                         run["success_step"], run["chunk_s"], run["step_s"], video, serve,
                         trace.to_dict() if trace is not None else None, recovery)


def _recovery_run(job: RolloutJob, base: dict, recovery_opts: dict) -> dict:
    """The episode with recovery: without an alarm in the monitored run it is that run; else it is run again."""
    from vla.serve.recovery import RecoveryConfig, RecoveryController

    first = base["trace"].first_alarm()
    if first is None:
        return {"success": base["success"], "steps": base["steps"], "success_step": base["success_step"],
                "stopped": False, "recoveries": [], "rerun": False, "replay_consistent": True}
    cfg = dict(recovery_opts)
    cfg["position_dims"] = tuple(cfg.get("position_dims", (0, 1, 2)))
    controller = RecoveryController(RecoveryConfig(**cfg), _STATE["policy"].config.action_dim)
    run = _episode(job, record_frames=False, recovery=controller)
    # up to its first alarm the run with recovery is the same rollout as the monitored one
    consistent = run["trace"].first_alarm() == first
    return {"success": run["success"], "steps": run["steps"], "success_step": run["success_step"],
            "stopped": run["stopped"], "recoveries": run["recoveries"], "rerun": True,
            "replay_consistent": bool(consistent), "trace": run["trace"].to_dict()}


def serve_summary(records: list[dict]) -> dict:
    """Counts over one episode's executed actions: holds, watchdog trips by reason, safety limits hit."""
    watchdog: dict[str, int] = {}
    limits: dict[str, int] = {}
    for r in records:
        if r["watchdog"]:
            reason = str(r["watchdog"]).split(":", 1)[0]
            watchdog[reason] = watchdog.get(reason, 0) + 1
        for name in r["safety_active"]:
            limits[name] = limits.get(name, 0) + 1
    return {"actions": len(records), "holds": sum(r["kind"] == "hold" for r in records),
            "idle": sum(bool(r["idle"]) for r in records), "watchdog": watchdog,
            "safety_modified": sum(bool(r["safety_active"]) for r in records), "safety_limits": limits,
            "violations": sum(int(r.get("violations", 0)) for r in records)}


def _write_video(folder: Path, job: RolloutJob, success: bool, frames: list[np.ndarray]) -> str:
    from vla.data.video import VideoAppender

    folder.mkdir(parents=True, exist_ok=True)
    name = f"{job.task}_{'success' if success else 'failure'}_ep{job.episode:03d}.mp4"
    h, w, _ = frames[0].shape
    tmp = folder / f".{name}.{os.getpid()}.tmp.mp4"
    v = VideoAppender(tmp, 30, h, w, crf=23, pix_fmt="yuv420p")  # 30 fps playback: slowed from 80 Hz
    v.append(np.stack(frames))
    v.close()
    os.replace(tmp, folder / name)
    return name
