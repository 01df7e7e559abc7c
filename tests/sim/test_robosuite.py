"""robosuite suite: observation contract for two robots and both controllers, seeding, expert, collection."""

from __future__ import annotations

import numpy as np
import pytest

from vla.data import Dataset
from vla.errors import VlaError
from vla.sim.robosuite.collect import collect_robosuite
from vla.sim.robosuite.env import RobosuiteEnv
from vla.sim.robosuite.robots import robot_info
from vla.sim.rollout import run_expert_episode

SIZE = 32


@pytest.mark.parametrize(("robot", "controller"), [("Panda", "osc"), ("UR5e", "joint_velocity")])
def test_observation_contract_and_seeded_scenes(robot, controller):
    with RobosuiteEnv("Lift", robot=robot, controller=controller, cameras=("agentview",), image_size=SIZE,
                      max_steps=20) as env:
        obs, _ = env.reset(seed=3)
        assert set(obs) == {"images", "state", "instruction"}
        img = obs["images"]["agentview"]
        assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
        assert obs["state"].dtype == np.float32 and obs["state"].ndim == 1
        assert isinstance(obs["instruction"], str) and obs["instruction"]
        a = env.expert_action()
        n_act = 7 if controller == "osc" else a.shape[0]
        assert a.shape == (n_act,) and np.all(np.isfinite(a))
        first_state, first_img = obs["state"].copy(), img.copy()
        env.step(a)
        again, _ = env.reset(seed=3)
        np.testing.assert_allclose(again["state"], first_state, atol=1e-6)
        np.testing.assert_array_equal(again["images"]["agentview"], first_img)
        other, _ = env.reset(seed=4)
        assert not np.array_equal(other["images"]["agentview"], first_img)  # the cube moved


def test_unknown_names_list_the_known_ones():
    with pytest.raises(VlaError, match="Panda"):
        robot_info("R2D2")
    with pytest.raises(VlaError, match="osc"):
        RobosuiteEnv("Lift", robot="Panda", controller="torque")


def test_expert_lifts_and_collection_writes_a_dataset(tmp_path):
    with RobosuiteEnv("Lift", robot="Panda", cameras=("agentview",), image_size=SIZE) as env:
        ep = run_expert_episode(env, seed=11, steps_after_success=2)
    assert ep.success and ep.actions.shape[1] == 7
    collect_robosuite(["Panda"], ["Lift"], tmp_path / "rs", episodes_per_task=1, cameras=("agentview",),
                      image_size=SIZE, workers=1, progress=False)
    ds = Dataset.open(tmp_path / "rs" / "Panda")
    assert ds.num_episodes == 1 and ds.robot_type == robot_info("Panda").robot_type
    assert ds.features["action"]["shape"] == [7] and ds.camera_keys == ["observation.images.agentview"]
    assert ds.episodes[0].provenance["collection_method"] == "scripted"


def test_catalog_facets_cover_robosuite_robots(tmp_path):
    from vla.data.catalog import Catalog, Query, add_dataset

    collect_robosuite(["Panda", "PandaOmron"], ["Lift"], tmp_path / "rs", episodes_per_task=1, cameras=("agentview",),
                      image_size=SIZE, workers=1, progress=False)
    with Catalog(tmp_path / "c.sqlite") as cat:
        for robot in ("Panda", "PandaOmron"):
            add_dataset(cat, tmp_path / "rs" / robot)
        arms = cat.search(Query(embodiment="fixed_base_arm"))
        mobile = cat.search(Query(embodiment="mobile_manipulator"))
    assert {r["robot"] for r in arms} == {"robosuite_panda"}
    assert {r["robot"] for r in mobile} == {"robosuite_panda_omron"}
