"""Tiny synthetic datasets written with DatasetWriter, for training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

INSTRUCTIONS = ["open the drawer", "close the drawer", "push the puck to the goal"]


def make_dataset(root: Path, episodes: int = 4, length: int = 12, cameras: tuple[str, ...] = ("corner4", "gripperPOV"),
                 size: int = 32, seed: int = 0, use_videos: bool = False, env_state: bool = False,
                 state_dim: int = 4, action_dim: int = 4, robot_type: str = "test") -> Path:
    """A dataset whose action is a function of the state and of a bright square's position; with
    ``env_state``, ``observation.environment_state`` holds the square's position (as a simulator would).
    Other ``state_dim`` / ``action_dim`` / ``robot_type`` make a different robot."""
    from vla.data import DatasetWriter, Provenance

    rng = np.random.default_rng(seed)
    features = {
        "observation.state": {"dtype": "float32", "shape": [state_dim],
                              "names": ["x", "y", "z", "gripper", *(f"s{i}" for i in range(4, state_dim))][:state_dim]},
        "action": {"dtype": "float32", "shape": [action_dim],
                   "names": ["dx", "dy", "dz", "gripper", *(f"a{i}" for i in range(4, action_dim))][:action_dim]},
    }
    for cam in cameras:
        features[f"observation.images.{cam}"] = {"dtype": "video" if use_videos else "image",
                                                 "shape": [size, size, 3], "names": ["height", "width", "channels"]}
    if env_state:
        features["observation.environment_state"] = {"dtype": "float32", "shape": [3],
                                                     "names": ["goal_row", "goal_col", "unused"]}
    prov = Provenance(collector_id="tests.tiny_dataset", collection_method="scripted")
    with DatasetWriter(root, fps=10, features=features, robot_type=robot_type, use_videos=use_videos) as w:
        for e in range(episodes):
            goal = rng.integers(2, size - 6, 2)
            for _ in range(length):
                state = rng.normal(size=state_dim).astype(np.float32)
                base = np.resize(state, action_dim) if action_dim != state_dim else state
                frame = {"observation.state": state,
                         "action": np.tanh(base * 0.5 + goal.mean() / size).astype(np.float32)}
                if env_state:
                    frame["observation.environment_state"] = np.array([*goal, 0.0], dtype=np.float32)
                for cam in cameras:
                    img = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
                    img[goal[0]:goal[0] + 4, goal[1]:goal[1] + 4] = 255
                    frame[f"observation.images.{cam}"] = img
                w.add_frame(frame, task=INSTRUCTIONS[e % len(INSTRUCTIONS)])
            w.save_episode(prov)
    return root
