"""A tiny scripted collection (worker process + parent writer) opens as a dataset with provenance."""

from __future__ import annotations

import numpy as np

from vla.data import Dataset
from vla.sim.collect import collect_metaworld
from vla.sim.seeds import is_evaluation_seed
from vla.sim.suites import load_instructions


def test_tiny_collection(tmp_path):
    out = tmp_path / "mw"
    summary = collect_metaworld("mt1:reach-v3", out, episodes_per_task=2, cameras=("corner2",), image_size=32,
                                workers=1, seed=0, max_steps=150, progress=False)
    assert summary["kept"] == {"reach-v3": 2} and summary["rejected"] == {"reach-v3": 0}
    assert summary["episodes"] == 2 and summary["frames"] > 0 and summary["frames_per_s"] > 0

    ds = Dataset.open(out)
    assert ds.num_episodes == 2 and ds.num_frames == summary["frames"]
    assert ds.fps == 80 and ds.robot_type == "sawyer"
    assert ds.features["observation.state"]["shape"] == [4] and ds.features["action"]["shape"] == [4]
    assert ds.camera_keys == ["observation.images.corner2"]
    assert ds.embodiment["control_rate_hz"] == 80 and ds.embodiment["cameras"] == ["corner2"]
    train = set(load_instructions()["reach-v3"]["train"])
    for ep in ds.episodes:
        assert len(ep.tasks) == 1 and ep.tasks[0] in train
        p = ep.provenance
        assert p["collection_method"] == "scripted"
        assert p["collector_id"] == "metaworld.policies.SawyerReachV3Policy"
        assert p["hardware"]["robot"] == "MetaWorld Sawyer (sim)"
        assert p["source"]["format"] == "metaworld" and p["source"]["path"] == "metaworld/reach-v3"
        assert not is_evaluation_seed(p["source"]["seed"])
    cols = ds.episode_columns(0)
    assert cols["action"].dtype == np.float32 and np.all(np.abs(cols["action"]) <= 1)
    # the privileged scene state is recorded (a training target), its goal part is the episode's goal
    env_state = cols["observation.environment_state"]
    assert ds.features["observation.environment_state"]["names"][-3:] == ["goal_x", "goal_y", "goal_z"]
    assert env_state.shape == (ds.episodes[0].length, 17) and env_state.dtype == np.float32
    assert np.ptp(env_state[:, -3:], axis=0).max() < 1e-6  # the reach goal does not move in an episode
    assert not np.allclose(env_state[0, -3:], ds.episode_columns(1)["observation.environment_state"][0, -3:])
    imgs = ds.episode_images(0, "observation.images.corner2")
    assert imgs.shape == (ds.episodes[0].length, 32, 32, 3) and imgs.dtype == np.uint8
