"""Synthetic episodes for tests: a MetaWorld-like arm (hand xyz + gripper, delta actions) with a
camera that draws the hand as a blob, and a writer that stores full episodes as a vla dataset.

The actions relate to the following states like MetaWorld's (state delta = scale * action,
applied with a one-step lag, plus noise), so every detector has something real to check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.audit.episode import EpisodeArrays, thumbnails

FPS = 20.0
SCALE = 0.01
SIZE = 32
INSTRUCTIONS = ["pick up the red block", "open the drawer", "insert the peg into the hole", "push the puck"]


@dataclass
class FullEpisode:
    """Raw episode (full images, not thumbnails) that can be written with DatasetWriter."""

    state: np.ndarray
    action: np.ndarray
    images: np.ndarray  # uint8 [T, SIZE, SIZE, 3]
    timestamps: np.ndarray
    task: str
    provenance: dict[str, Any] = field(default_factory=dict)

    def arrays(self, index: int) -> EpisodeArrays:
        images = {"observation.images.cam": thumbnails(self.images)}
        return EpisodeArrays(index, self.timestamps.copy(), self.state.astype(np.float64),
                             self.action.astype(np.float64), images, [self.task], dict(self.provenance))


def draw(state: np.ndarray) -> np.ndarray:
    """Camera: a bright blob at the hand's (x, y), size from z, on a textured background."""
    T = len(state)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    bg = (40 + 20 * np.sin(xx / 3.0) * np.cos(yy / 4.0)).astype(np.float32)
    out = np.empty((T, SIZE, SIZE, 3), np.uint8)
    for t in range(T):
        cx = (state[t, 0] + 0.5) * SIZE
        cy = (state[t, 1] + 0.5) * SIZE
        r = 3 + 2 * state[t, 2]
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)) * 200
        g = np.clip(bg + blob, 0, 255)
        out[t] = np.stack([g, g * 0.8, g * (0.5 + 0.3 * state[t, 3])], axis=-1).astype(np.uint8)
    return out


def episode(rng: np.random.Generator, length: int | None = None, task: str | None = None) -> FullEpisode:
    """One clean episode: reach towards two random waypoints, close then open the gripper."""
    T = int(length or rng.integers(60, 90))
    s = np.zeros((T, 4))
    a = np.zeros((T, 4))
    s[0, :3] = rng.uniform(-0.2, 0.2, 3)
    s[0, 3] = 1.0
    goals = [rng.uniform(-0.35, 0.35, 3) for _ in range(2)]
    for t in range(T - 1):
        g = goals[0] if t < T // 2 else goals[1]
        a[t, :3] = np.clip((g - s[t, :3]) * 4.0, -1, 1) + rng.normal(0, 0.05, 3)
        a[t, 3] = 1.0 if T // 3 <= t < 2 * T // 3 else -1.0
        prev = a[t - 1] if t > 0 else a[t]
        s[t + 1, :3] = s[t, :3] + SCALE * 3 * prev[:3] + rng.normal(0, 0.0005, 3)
        s[t + 1, 3] = np.clip(s[t, 3] - 0.15 * prev[3], 0.0, 1.0)
    a[T - 1] = a[T - 2]
    task = task or INSTRUCTIONS[int(rng.integers(0, len(INSTRUCTIONS)))]
    prov = {"collector_id": "synthetic.reacher", "collection_method": "scripted", "license": "MIT",
            "hardware": {"robot": "synthetic arm"}, "source": {"format": "synthetic", "path": f"synthetic/{task}"}}
    return FullEpisode(s.astype(np.float32), a.astype(np.float32), draw(s), np.arange(T) / FPS, task, prov)


def dataset(n: int = 12, seed: int = 0, tasks: list[str] | None = None) -> list[FullEpisode]:
    rng = np.random.default_rng(seed)
    tasks = tasks or INSTRUCTIONS[:2]
    return [episode(rng, task=tasks[i % len(tasks)]) for i in range(n)]


FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [4], "names": ["x", "y", "z", "gripper"]},
    "action": {"dtype": "float32", "shape": [4], "names": ["dx", "dy", "dz", "gripper"]},
    "observation.images.cam": {"dtype": "video", "shape": [SIZE, SIZE, 3], "names": ["height", "width", "channels"]},
}


def write(episodes: list[FullEpisode], root: str | Path, use_videos: bool = False, overwrite: bool = True) -> Path:
    """Store episodes as a vla dataset (timestamps as given, even when broken). PNG frames by default:
    at 32x32 a video codec repeats frames exactly for sub-pixel motion, which would look like drops."""
    from vla.data import DatasetWriter, EmbodimentSpec

    emb = EmbodimentSpec(name="synthetic_arm", robot_type="synthetic_arm", embodiment_type="fixed_base_arm",
                         action_space="ee_delta_position+gripper", action_names=FEATURES["action"]["names"],
                         state_names=FEATURES["observation.state"]["names"], control_rate_hz=FPS, cameras=["cam"],
                         gripper_dims=[3])
    with DatasetWriter(root, fps=FPS, features=FEATURES, robot_type="synthetic_arm", embodiment=emb,
                       use_videos=use_videos, overwrite=overwrite) as w:
        for ep in episodes:
            for t in range(len(ep.state)):
                w.add_frame({"observation.state": ep.state[t], "action": ep.action[t],
                             "observation.images.cam": ep.images[min(t, len(ep.images) - 1)]},
                            task=ep.task, timestamp=float(ep.timestamps[t]))
            w.save_episode(ep.provenance)
    return Path(root)
