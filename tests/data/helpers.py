"""Builders of small synthetic datasets for the store tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vla.data import DatasetWriter, EmbodimentSpec

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [4], "names": ["x", "y", "z", "gripper"]},
    "action": {"dtype": "float32", "shape": [4], "names": ["dx", "dy", "dz", "gripper"]},
    "observation.images.front": {"dtype": "video", "shape": [64, 80, 3], "names": None},
}
PROV = {"collector_id": "test-suite", "collection_method": "scripted", "hardware": {"robot": "toy arm"},
        "license": "MIT", "source": {"format": "synthetic"}}


def scene_image(t: int, h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    """A camera-like frame: smooth shaded background, a table edge and two moving objects."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[..., 0] = 90 + 40 * yy / h
    img[..., 1] = 110 + 30 * xx / w
    img[..., 2] = 140 - 20 * yy / h
    img[yy > h * 0.6] = (150, 120, 90)
    cx, cy = 10 + (t * 2 + seed * 7) % (w - 20), h * 0.5
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 18.0)[..., None]
    img = img * (1 - blob) + blob * np.array([220, 40, 40])
    img[int(h * 0.3):int(h * 0.3) + 6, (t * 3) % (w - 6):(t * 3) % (w - 6) + 6] = (30, 200, 60)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_episode_arrays(length: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "observation.state": rng.normal(size=(length, 4)).astype(np.float32),
        "action": rng.uniform(-1, 1, size=(length, 4)).astype(np.float32),
        "observation.images.front": np.stack([scene_image(t, seed=seed) for t in range(length)]),
    }


def write_dataset(root: Path, lengths=(12, 17, 9), use_videos: bool = True, fps: float = 10.0,
                  tasks=("pick up the cube", "open the drawer")) -> list[dict[str, np.ndarray]]:
    emb = EmbodimentSpec(name="toy", robot_type="toy_arm", embodiment_type="fixed_base_arm",
                         action_names=["dx", "dy", "dz", "gripper"], state_names=["x", "y", "z", "gripper"],
                         control_rate_hz=fps, cameras=["front"])
    episodes = []
    with DatasetWriter(root, fps=fps, features=FEATURES, robot_type="toy_arm", embodiment=emb,
                       use_videos=use_videos) as w:
        for e, n in enumerate(lengths):
            arrays = make_episode_arrays(n, seed=e)
            for i in range(n):
                w.add_frame({k: v[i] for k, v in arrays.items()}, task=tasks[e % len(tasks)])
            w.save_episode({**PROV, "calibration": {"episode": e}})
            episodes.append(arrays)
    return episodes
