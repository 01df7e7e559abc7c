"""Benchmark MetaWorld rendering: cost per view and how many pixels the goal marker and puck cover.

For each camera and image size: milliseconds per rendered view with vla.sim's fast settings
(no shadows/reflections/skybox/MSAA), and, from segmentation renders at reset over several
seeds, the pixel area of the reach-v3 goal marker and of the push-v3 puck and goal. Also the
cost of metaworld's default render for reference. Writes JSON (default
benchmarks/results/render.json); the defaults in vla.sim.defaults were chosen from it.

    MUJOCO_GL=egl nice python benchmarks/render.py [--out PATH] [--seeds N] [--frames N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from vla.sim.env import MetaWorldEnv  # noqa: E402

CAMERAS = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")
SIZES = (64, 96, 128, 160, 224)


def _time_views(env: MetaWorldEnv, frames: int) -> float:
    """Mean ms per view of one camera over ``frames`` frames along an expert trajectory."""
    env.reset(seed=0)
    env.render()  # warm-up
    total = 0.0
    for _ in range(frames):
        env.step(env.expert_action())
        t = time.perf_counter()
        env.render()
        total += time.perf_counter() - t
    return 1000 * total / frames / len(env.cameras)


def _object_pixels(env: MetaWorldEnv, seg: mujoco.Renderer, camera: str, targets: dict[str, tuple[int, int]]):
    seg.update_scene(env._mw.data, camera=camera)
    ids = seg.render()
    return {name: int(np.sum((ids[..., 0] == oid) & (ids[..., 1] == otype))) for name, (oid, otype) in targets.items()}


def _targets(model: mujoco.MjModel, task: str) -> dict[str, tuple[int, int]]:
    """(object id, object type) of the goal marker, and of the puck for push-v3."""
    targets = {"goal": (mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "goal"), int(mujoco.mjtObj.mjOBJ_SITE))}
    if task == "push-v3":
        body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "obj")
        geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] == body]
        targets["puck"] = (geoms[0], int(mujoco.mjtObj.mjOBJ_GEOM))
    return targets


def _coverage(task: str, size: int, seeds: int, trajectory: bool = False) -> dict[str, dict[str, dict[str, float]]]:
    """Pixels covered per camera by the goal marker (and the puck): at reset, or over every frame
    of expert episodes when ``trajectory`` (the arm may hide them). Median/min over samples."""
    env = MetaWorldEnv(task, cameras=("corner2",), image_size=size)
    targets = _targets(env._mw.model, task)
    seg = mujoco.Renderer(env._mw.model, size, size)
    seg.enable_segmentation_rendering()
    counts: dict[str, dict[str, list[int]]] = {c: {k: [] for k in targets} for c in CAMERAS}

    def record() -> None:
        for cam in CAMERAS:
            for k, v in _object_pixels(env, seg, cam, targets).items():
                counts[cam][k].append(v)

    for s in range(seeds):
        env.reset(seed=1000 + s)
        record()
        for _ in range(200 if trajectory else 0):
            _, _, _, truncated, info = env.step(env.expert_action())
            record()
            if info["success"] or truncated:
                break
    seg.close()
    env.close()
    return {cam: {k: _summary(v) for k, v in d.items()} for cam, d in counts.items()}


def _summary(v: list[int]) -> dict[str, float]:
    a = np.asarray(v)
    return {"median": float(np.median(a)), "mean": round(float(a.mean()), 1), "min": int(a.min()),
            "visible_frac": round(float(np.mean(a > 0)), 3)}


def _metaworld_default_ms(frames: int) -> float:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

    env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE["reach-v3-goal-observable"](render_mode="rgb_array")
    env.camera_name = "corner2"
    env.render()
    t = time.perf_counter()
    for _ in range(frames):
        env.render()
    ms = 1000 * (time.perf_counter() - t) / frames
    env.close()
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/render.json")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--frames", type=int, default=20)
    args = ap.parse_args()

    timing: dict[str, dict[str, float]] = {}
    for size in SIZES:
        timing[str(size)] = {}
        for cam in CAMERAS:
            env = MetaWorldEnv("push-v3", cameras=(cam,), image_size=size)
            timing[str(size)][cam] = round(_time_views(env, args.frames), 2)
            env.close()
        print(f"{size:4d}px ms/view:", timing[str(size)], flush=True)
    coverage = {task: {str(size): _coverage(task, size, args.seeds) for size in SIZES}
                for task in ("reach-v3", "push-v3")}
    along = {task: _coverage(task, 128, max(2, args.seeds // 2), trajectory=True) for task in ("reach-v3", "push-v3")}
    for task, by_size in coverage.items():
        for size, by_cam in by_size.items():
            print(task, size, {c: v["goal"]["median"] for c, v in by_cam.items()}, flush=True)
    result = {
        "what": "ms per rendered view (fast settings); pixels covered by goal marker/puck at reset over seeds "
                "and along expert episodes (arm occlusion)",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "mujoco": mujoco.__version__,
                    "MUJOCO_GL": os.environ.get("MUJOCO_GL"), "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()]},
        "ms_per_view_fast": timing,
        "ms_per_frame_metaworld_default_480px": round(_metaworld_default_ms(max(3, args.frames // 4)), 2),
        "pixels_at_reset": coverage,
        "pixels_along_expert_episodes_128px": along,
        "seeds": args.seeds,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print("wrote", out)


if __name__ == "__main__":
    main()
