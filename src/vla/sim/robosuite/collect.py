"""Collect scripted-expert robosuite demonstrations: one vla dataset per robot (DIR/<robot>).

The scheduling is ``vla.sim.collect.collect_ordered`` (as ``vla collect metaworld``): worker
processes ("spawn") run the episodes, the parent writes them in (task, attempt) order, so the
result does not depend on the number of workers; attempt k of a task uses
``seeds.collection_seed(seed, task_index, k)`` (task indices 100+, see ``tasks.py``), which fixes
the scene and the instruction (drawn from the task's train split). Every robot gets the same
seeds, hence the same scenes. Only successful episodes are kept.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from vla.errors import VlaError
from vla.sim import seeds
from vla.sim.collect import ProgressBar, TaskState, collect_ordered
from vla.sim.robosuite.env import CONTROL_RATE_HZ, CONTROLLERS, DEFAULT_CAMERAS, DEFAULT_IMAGE_SIZE
from vla.sim.robosuite.robots import robot_info
from vla.sim.robosuite.tasks import task_index, task_name
from vla.sim.rollout import ExpertEpisode, run_expert_episode

ANNOTATION = ("instruction drawn (seeded) from the 'train' split of vla/sim/robosuite/instructions.json; "
              "episode ends {n} steps after robosuite's success check first passes; failed attempts discarded")
ACTION_SPACES = {"osc": "ee_delta_pose+gripper", "joint_velocity": "joint_velocity+gripper"}


def features(state_names: list[str], action_names: list[str], cameras: tuple[str, ...],
             image_size: int) -> dict[str, dict[str, Any]]:
    """Dataset features of one robot's collection."""
    feats: dict[str, dict[str, Any]] = {
        "observation.state": {"dtype": "float32", "shape": [len(state_names)], "names": list(state_names)},
        "action": {"dtype": "float32", "shape": [len(action_names)], "names": list(action_names)},
    }
    for cam in cameras:
        feats[f"observation.images.{cam}"] = {
            "dtype": "video", "shape": [image_size, image_size, 3], "names": ["height", "width", "channels"]}
    return feats


def embodiment(robot: str, controller: str, layout: dict[str, Any], cameras: tuple[str, ...]):
    """EmbodimentSpec of ``robot`` under ``controller`` (names from the env's layout)."""
    from vla.data import EmbodimentSpec

    info = robot_info(robot)
    return EmbodimentSpec(
        name=f"{info.robot_type}_{controller}", robot_type=info.robot_type, embodiment_type=info.embodiment_type,
        action_space=ACTION_SPACES[controller], action_names=layout["action_names"],
        state_names=layout["state_names"], control_rate_hz=CONTROL_RATE_HZ, cameras=list(cameras),
        gripper_dims=layout["gripper_dims"])


def provenance(ep: ExpertEpisode, robot: str, controller: str, cameras: tuple[str, ...], image_size: int,
               steps_after_success: int, versions: dict[str, str], run_seed: int):
    """Provenance of one scripted episode."""
    from vla.data import Provenance
    from vla.sim.robosuite.experts import expert_id

    info = robot_info(robot)
    return Provenance(
        collector_id=expert_id(ep.task),
        collection_method="scripted",
        hardware={"robot": info.model, "robot_model": robot, "gripper": info.gripper,
                  "controller": {"osc": "robosuite OSC_POSE (delta, base frame)",
                                 "joint_velocity": "robosuite JOINT_VELOCITY"}[controller],
                  "cameras": list(cameras), "image_size": [image_size, image_size],
                  "simulator": f"mujoco {versions['mujoco']}"},
        calibration={},
        annotation_protocol=ANNOTATION.format(n=steps_after_success),
        source={"format": "robosuite", "path": f"robosuite/{ep.task}/{robot}", "sha256": None,
                "robosuite_version": versions["robosuite"], "seed": ep.seed, "run_seed": run_seed,
                "attempt": ep.attempt},
        license="MIT",
        extra={"success_step": ep.success_step, "seed_range": "collection", "controller": controller},
    )


# ---------------------------------------------------------------- worker process side
_CONFIG: dict = {}
_ENV = None


def init_worker(config: dict) -> None:
    """Pool initializer: remember the env settings; one software-GL thread per worker process."""
    os.environ.setdefault("LP_NUM_THREADS", "1")
    os.environ.setdefault("MUJOCO_GL", "egl")
    _CONFIG.clear()
    _CONFIG.update(config)


def _env(robot: str, task: str):
    global _ENV
    if _ENV is None or (_ENV.robot, _ENV.task) != (robot, task):
        from vla.sim.robosuite.env import RobosuiteEnv

        if _ENV is not None:
            _ENV.close()
        _ENV = RobosuiteEnv(task, robot, controller=_CONFIG["controller"], cameras=_CONFIG["cameras"],
                            image_size=_CONFIG["image_size"], max_steps=_CONFIG["max_steps"])
    return _ENV


def worker_layout(robot: str, task: str) -> dict[str, Any]:
    """State/action names and gripper dims of ``robot`` (built in a worker: the parent never imports robosuite)."""
    env = _env(robot, task)
    from importlib import metadata

    from vla.sim.robosuite._backend import robosuite_version

    return {"state_names": env.state_names, "action_names": env.action_names, "gripper_dims": env.gripper_dims,
            "versions": {"robosuite": robosuite_version(), "mujoco": metadata.version("mujoco")}}


def worker_episode(robot: str, task: str, attempt: int, seed: int) -> ExpertEpisode:
    """Run one attempt in this worker, reusing the env while robot and task stay the same."""
    return run_expert_episode(_env(robot, task), seed, attempt, _CONFIG["steps_after_success"])


# ---------------------------------------------------------------- parent side
def collect_robosuite(
    robots: list[str] | tuple[str, ...],
    tasks: list[str] | tuple[str, ...],
    out: str | Path,
    episodes_per_task: int = 50,
    controller: str = "osc",
    cameras: tuple[str, ...] | list[str] = DEFAULT_CAMERAS,
    image_size: int = DEFAULT_IMAGE_SIZE,
    workers: int = 2,
    seed: int = 0,
    max_steps: int | None = None,
    steps_after_success: int = 10,
    max_attempts_factor: float = 3.0,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Collect ``episodes_per_task`` successful demonstrations per task for every robot, into OUT/<robot>.

    Returns a summary: per robot kept/rejected per task and its dataset path; frames, wall time, frames/s.
    """
    from vla.data import DatasetWriter

    robots = [robot_info(r).name for r in robots]
    tasks = [task_name(t) for t in tasks]
    cameras = tuple(cameras)
    if not robots or not tasks:
        raise VlaError("give at least one robot (--robots) and one task (--tasks)")
    if controller not in CONTROLLERS:
        raise VlaError(f"unknown controller {controller!r}; valid: {', '.join(CONTROLLERS)}")
    if episodes_per_task < 1 or workers < 1:
        raise VlaError(f"episodes_per_task and workers must be >= 1, got {episodes_per_task} and {workers}")
    out = Path(out)
    existing = [str(out / r) for r in robots if (out / r).exists()]
    if existing and not overwrite:
        raise VlaError(f"dataset folder(s) already exist: {', '.join(existing)} (use --overwrite)")
    max_attempts = max(episodes_per_task + 1, int(episodes_per_task * max_attempts_factor))
    config = {"controller": controller, "cameras": cameras, "image_size": image_size, "max_steps": max_steps,
              "steps_after_success": steps_after_success}
    t0 = time.perf_counter()
    per_robot: dict[str, Any] = {}
    totals = {"frames": 0, "rendered": 0, "steps": 0}
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                               initializer=init_worker, initargs=(config,))
    try:
        for robot in robots:
            layout = pool.submit(worker_layout, robot, tasks[0]).result()
            states = [TaskState(t, task_index(t)) for t in tasks]
            writer = DatasetWriter(out / robot, fps=CONTROL_RATE_HZ,
                                   features=features(layout["state_names"], layout["action_names"], cameras,
                                                     image_size),
                                   robot_type=robot_info(robot).robot_type,
                                   embodiment=embodiment(robot, controller, layout, cameras), use_videos=True,
                                   overwrite=overwrite)
            bar = ProgressBar(len(states) * episodes_per_task, enabled=progress)

            def write(ep: ExpertEpisode, writer=writer, robot=robot, versions=layout["versions"]) -> None:
                for t in range(len(ep.actions)):
                    frame = {"observation.state": ep.states[t], "action": ep.actions[t]}
                    for cam in cameras:
                        frame[f"observation.images.{cam}"] = ep.images[cam][t]
                    writer.add_frame(frame, task=ep.instruction)
                writer.save_episode(provenance(ep, robot, controller, cameras, image_size, steps_after_success,
                                               versions, seed))

            def submit(st: TaskState, k: int, robot=robot):
                return pool.submit(worker_episode, robot, st.task, k, seeds.collection_seed(seed, st.index, k))

            with writer, bar:
                got = collect_ordered(states, submit, write, episodes_per_task, max_attempts, 2 * workers, bar,
                                      len(cameras))
            for k in totals:
                totals[k] += got[k]
            per_robot[robot] = {
                "out": str((out / robot).absolute()), "robot_type": robot_info(robot).robot_type,
                "episodes": sum(s.kept for s in states), "frames": got["frames"],
                "kept": {s.task: s.kept for s in states}, "rejected": {s.task: s.rejected for s in states},
                "shortfall": {s.task: episodes_per_task - s.kept for s in states if s.kept < episodes_per_task}}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    wall = time.perf_counter() - t0
    return {
        "out": str(out.absolute()), "robots": per_robot, "tasks": tasks, "controller": controller,
        "episodes_per_task": episodes_per_task, "cameras": list(cameras), "image_size": image_size,
        "workers": workers, "seed": seed,
        "episodes": sum(r["episodes"] for r in per_robot.values()), "frames": totals["frames"],
        "sim_steps": totals["steps"], "rendered_images": totals["rendered"], "wall_time_s": round(wall, 3),
        "frames_per_s": round(totals["frames"] / wall, 2), "rendered_images_per_s": round(totals["rendered"] / wall, 2),
    }
