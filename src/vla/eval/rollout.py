"""Policy rollouts in worker processes: one policy and one env per process, reused across episodes.

A worker records the frames of every episode it runs and writes the video of the first success
and the first failure it sees per task (the parent keeps one of each per task).
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


_STATE: dict = {}


def init_worker(policy_dir: str | None, max_steps: int, video_dir: str | None, torch_threads: int,
                server: dict | None = None, sim: dict | None = None) -> None:
    """Pool initializer: load the policy once per process, or connect to ``server`` ({"url", "api_key"})."""
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
    _STATE.update(policy=policy, max_steps=max_steps, video_dir=video_dir, env=None, recorded=set(), sim=sim)


def _env_for(task: str):
    env = _STATE["env"]
    if env is None or env.task != task:
        from vla.eval.sims import make_env

        if env is not None:
            env.close()
        cfg = _STATE["policy"].config
        env = make_env(task, tuple(cfg.cameras), cfg.image_size, _STATE["max_steps"], _STATE.get("sim"))
        _STATE["env"] = env
    return env


def run_job(job: RolloutJob) -> RolloutResult:
    """Run one evaluation episode; success = info["success"] at any step (the episode stops there)."""
    policy = _STATE["policy"]
    env = _env_for(job.task)
    chunk_s: list[float] = []
    original = policy.predict_chunk

    def timed_predict_chunk(obs):
        t0 = time.perf_counter()
        out = original(obs)
        chunk_s.append(time.perf_counter() - t0)
        return out

    policy.predict_chunk = timed_predict_chunk
    step_s: list[float] = []
    frames: list[np.ndarray] = []
    success_step = None
    try:
        obs, _ = env.reset(seed=job.seed, instruction=job.instruction)
        policy.reset(seed=job.seed)  # sampling heads: the episode's noise is reproducible from its seed
        steps = 0
        for steps in range(1, _STATE["max_steps"] + 1):
            frames.append(np.concatenate([obs["images"][c] for c in policy.config.cameras], axis=1))
            t0 = time.perf_counter()
            action = policy.select_action(obs)
            step_s.append(time.perf_counter() - t0)
            obs, _, terminated, truncated, info = env.step(action)
            if info["success"]:
                success_step = steps
                break
            if terminated or truncated:
                break
        frames.append(np.concatenate([obs["images"][c] for c in policy.config.cameras], axis=1))
    finally:
        policy.predict_chunk = original
    success = success_step is not None
    video = None
    key = (job.task, success)
    if _STATE["video_dir"] and key not in _STATE["recorded"]:
        _STATE["recorded"].add(key)
        video = _write_video(Path(_STATE["video_dir"]), job, success, frames)
    serve = serve_summary(policy.records) if hasattr(policy, "records") else None
    return RolloutResult(job.task, job.episode, job.seed, job.instruction, success, steps, success_step,
                         chunk_s, step_s, video, serve)


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
