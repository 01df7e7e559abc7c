"""Collect scripted-expert MetaWorld demonstrations into a vla dataset (LeRobot v3.0 + provenance).

Worker processes (multiprocessing "spawn") each run their own environment and send finished
episodes (uint8 frames) back; the parent alone writes the dataset, in a fixed order, so the
result does not depend on the number of workers or on timing:

- attempt k of a task uses ``seeds.collection_seed(seed, task_index, k)`` (disjoint from the
  evaluation seeds), which fixes the scene and the instruction (drawn from the train split);
- the kept episodes of a task are its first ``episodes_per_task`` successful attempts; failed
  ones are counted as rejected; a task gives up after ``max_attempts_factor * episodes_per_task``
  attempts and the shortfall is reported.

Workers are started with "spawn": a script calling ``collect_metaworld`` needs the usual
``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from vla.sim import seeds
from vla.sim.defaults import CONTROL_RATE_HZ, DEFAULT_CAMERAS, DEFAULT_IMAGE_SIZE
from vla.sim.env_state import ENV_STATE_KEY, ENV_STATE_NAMES
from vla.sim.experts import expert_id
from vla.sim.progress import ProgressBar
from vla.sim.rollout import ExpertEpisode, init_worker, worker_episode
from vla.sim.suites import Suite, make_suite

STATE_NAMES = ["x", "y", "z", "gripper"]
ACTION_NAMES = ["dx", "dy", "dz", "gripper"]
ANNOTATION = ("instruction drawn (seeded) from the 'train' split of vla/sim/instructions.json; "
              "episode ends {n} steps after the first success; failed attempts discarded")


def features(cameras: tuple[str, ...], image_size: int, env_state: bool = True) -> dict[str, dict[str, Any]]:
    """Dataset features of a MetaWorld collection (``env_state``: with observation.environment_state)."""
    feats: dict[str, dict[str, Any]] = {
        "observation.state": {"dtype": "float32", "shape": [4], "names": STATE_NAMES},
        "action": {"dtype": "float32", "shape": [4], "names": ACTION_NAMES},
    }
    if env_state:  # privileged simulator state, a training target only (never a policy input)
        feats[ENV_STATE_KEY] = {"dtype": "float32", "shape": [len(ENV_STATE_NAMES)], "names": ENV_STATE_NAMES}
    for cam in cameras:
        feats[f"observation.images.{cam}"] = {
            "dtype": "video", "shape": [image_size, image_size, 3], "names": ["height", "width", "channels"]}
    return feats


def embodiment(cameras: tuple[str, ...]):
    """EmbodimentSpec of the simulated Sawyer (end-effector deltas + gripper, 80 Hz)."""
    from vla.data import EmbodimentSpec

    return EmbodimentSpec(
        name="metaworld_sawyer", robot_type="sawyer", embodiment_type="fixed_base_arm",
        action_space="ee_delta_position+gripper", action_names=ACTION_NAMES, state_names=STATE_NAMES,
        control_rate_hz=CONTROL_RATE_HZ, cameras=list(cameras), gripper_dims=[3])


def provenance(ep: ExpertEpisode, cameras: tuple[str, ...], image_size: int, steps_after_success: int,
               perturbation: dict[str, float] | None = None):
    """Provenance of one scripted episode (``perturbation``: the DART-style settings it was collected with)."""
    from vla.data import Provenance

    mw_version = metadata.version("metaworld")
    return Provenance(
        collector_id=expert_id(ep.task),
        collection_method="scripted",
        hardware={"robot": "MetaWorld Sawyer (sim)", "gripper": "Sawyer two-finger parallel gripper (sim)",
                  "cameras": list(cameras), "image_size": [image_size, image_size],
                  "simulator": f"mujoco {metadata.version('mujoco')}"},
        calibration={},
        annotation_protocol=ANNOTATION.format(n=steps_after_success),
        source={"format": "metaworld", "path": f"metaworld/{ep.task}", "sha256": None,
                "metaworld_version": mw_version, "seed": ep.seed, "attempt": ep.attempt},
        license="MIT",
        extra={"success_step": ep.success_step, "seed_range": "collection",
               **({"perturbation": perturbation} if perturbation else {})},
    )


@dataclass
class TaskState:
    """Scheduling state of one task: attempts issued, kept, rejected, results waiting to be written."""

    task: str
    index: int
    next_attempt: int = 0
    kept: int = 0
    rejected: int = 0
    in_flight: int = 0
    results: dict[int, ExpertEpisode] = field(default_factory=dict)
    next_to_write: int = 0

    def needs_attempt(self, target: int, max_attempts: int) -> bool:
        return self.kept + self.in_flight + self._pending_ok() < target and self.next_attempt < max_attempts

    def _pending_ok(self) -> int:
        return sum(1 for r in self.results.values() if r.success)

    def done(self, target: int, max_attempts: int) -> bool:
        finished = self.kept >= target or self.next_attempt >= max_attempts
        return finished and self.in_flight == 0 and self.next_to_write == self.next_attempt


def collect_metaworld(
    suite: str | Suite,
    out: str | Path,
    episodes_per_task: int = 50,
    cameras: tuple[str, ...] | list[str] = DEFAULT_CAMERAS,
    image_size: int = DEFAULT_IMAGE_SIZE,
    workers: int = 2,
    seed: int = 0,
    max_steps: int = 500,
    steps_after_success: int = 10,
    max_attempts_factor: float = 3.0,
    overwrite: bool = False,
    progress: bool = True,
    action_noise: float = 0.0,
    start_steps: int = 0,
) -> dict[str, Any]:
    """Collect ``episodes_per_task`` successful expert demonstrations per task of ``suite`` into ``out``.

    ``action_noise`` / ``start_steps``: DART-style perturbations of the executed actions and of the start
    pose (``vla.sim.rollout``); the recorded actions stay the expert's.

    Returns a summary: kept/rejected episodes per task, frames, wall time, frames/s.
    """
    from vla.data import DatasetWriter

    suite = make_suite(suite) if isinstance(suite, str) else suite
    cameras = tuple(cameras)
    if episodes_per_task < 1:
        raise ValueError(f"episodes_per_task must be >= 1, got {episodes_per_task}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not 0.0 <= action_noise <= 1.0:
        raise ValueError(f"action_noise must be in [0, 1] (std of the noise in action units), got {action_noise}")
    if start_steps < 0:
        raise ValueError(f"start_steps must be >= 0, got {start_steps}")
    perturbation = ({"action_noise": float(action_noise), "start_steps": int(start_steps)}
                    if action_noise or start_steps else None)
    max_attempts = max(episodes_per_task + 1, int(episodes_per_task * max_attempts_factor))
    states = [TaskState(t, suite.task_index(t)) for t in suite.tasks]
    config = {"cameras": cameras, "image_size": image_size, "max_steps": max_steps,
              "steps_after_success": steps_after_success, "action_noise": float(action_noise),
              "start_steps": int(start_steps)}
    window = 2 * workers
    t0 = time.perf_counter()
    writer = DatasetWriter(out, fps=CONTROL_RATE_HZ, features=features(cameras, image_size), robot_type="sawyer",
                           embodiment=embodiment(cameras), use_videos=True, overwrite=overwrite)
    bar = ProgressBar(len(states) * episodes_per_task, enabled=progress)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                               initializer=init_worker, initargs=(config,))
    try:
        with writer, bar:
            totals = collect_ordered(
                states, lambda st, k: pool.submit(worker_episode, st.task, k, seeds.collection_seed(seed, st.index, k)),
                lambda ep: _write_episode(writer, ep, cameras, image_size, steps_after_success, perturbation),
                episodes_per_task, max_attempts, window, bar, len(cameras))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    wall = time.perf_counter() - t0
    return {
        "suite": suite.name,
        "out": str(Path(out).absolute()),
        "episodes_per_task": episodes_per_task,
        "cameras": list(cameras),
        "image_size": image_size,
        "workers": workers,
        "seed": seed,
        "action_noise": float(action_noise),
        "start_steps": int(start_steps),
        "episodes": sum(s.kept for s in states),
        "frames": totals["frames"],
        "kept": {s.task: s.kept for s in states},
        "rejected": {s.task: s.rejected for s in states},
        "shortfall": {s.task: episodes_per_task - s.kept for s in states if s.kept < episodes_per_task},
        "sim_steps": totals["steps"],
        "rendered_images": totals["rendered"],
        "wall_time_s": round(wall, 3),
        "worker_episode_seconds": round(totals["episode_seconds"], 3),
        "frames_per_s": round(totals["frames"] / wall, 2),
        "rendered_images_per_s": round(totals["rendered"] / wall, 2),
    }


def collect_ordered(states: list[TaskState], submit: Callable[[TaskState, int], Future],
                    write: Callable[[ExpertEpisode], None], episodes_per_task: int, max_attempts: int,
                    window: int, bar: ProgressBar, n_cameras: int) -> dict[str, Any]:
    """Run attempts through ``submit(task_state, attempt) -> Future[ExpertEpisode]`` (at most ``window``
    in flight) and ``write`` the first ``episodes_per_task`` successes of each task, in (task, attempt)
    order, whatever order the results arrive in. Returns totals: frames, rendered images, steps, seconds."""
    totals: dict[str, Any] = {"frames": 0, "rendered": 0, "steps": 0, "episode_seconds": 0.0}
    futures: dict[Future, TaskState] = {}
    try:
        cursor = 0  # index into states of the task being written
        while cursor < len(states):
            # results waiting for an earlier task count against the window, except for the task
            # being written (so it can always make progress)
            buffered = sum(len(s.results) for s in states)
            for i, st in enumerate(states[cursor:]):
                load = len(futures) + (0 if i == 0 else buffered)
                while load < window and st.needs_attempt(episodes_per_task, max_attempts):
                    k = st.next_attempt
                    futures[submit(st, k)] = st
                    st.next_attempt += 1
                    st.in_flight += 1
                    load += 1
            if futures:
                done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for fut in done:
                    st = futures.pop(fut)
                    ep = fut.result()
                    st.in_flight -= 1
                    st.results[ep.attempt] = ep
                    totals["rendered"] += (ep.steps + 1) * n_cameras
                    totals["steps"] += ep.steps
                    totals["episode_seconds"] += ep.seconds
            # write what is contiguous, in (task, attempt) order
            while cursor < len(states):
                st = states[cursor]
                while st.next_to_write in st.results:
                    ep = st.results.pop(st.next_to_write)
                    st.next_to_write += 1
                    if ep.success and st.kept < episodes_per_task:
                        write(ep)
                        st.kept += 1
                        totals["frames"] += len(ep.actions)
                        bar.advance(1)
                    else:
                        st.rejected += 1
                    bar.describe(st.task, sum(s.rejected for s in states))
                if st.done(episodes_per_task, max_attempts):
                    cursor += 1
                else:
                    break
    finally:
        for fut in futures:
            fut.cancel()
    return totals


def _write_episode(writer, ep: ExpertEpisode, cameras: tuple[str, ...], image_size: int, after: int,
                   perturbation: dict[str, float] | None = None) -> None:
    for t in range(len(ep.actions)):
        frame = {"observation.state": ep.states[t], "action": ep.actions[t]}
        if ep.env_states is not None:
            frame[ENV_STATE_KEY] = ep.env_states[t]
        for cam in cameras:
            frame[f"observation.images.{cam}"] = ep.images[cam][t]
        writer.add_frame(frame, task=ep.instruction)
    writer.save_episode(provenance(ep, cameras, image_size, after, perturbation))
