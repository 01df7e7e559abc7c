"""robosuite scripted experts: the lean that reaches the far bin corner, the Stack face choice, gripper settling.

Each episode below failed with the experts before these mechanisms (collection seeds of seed 0).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from vla.sim.robosuite.env import RobosuiteEnv
from vla.sim.robosuite.experts import _leaned
from vla.sim.robosuite.tasks import task_index
from vla.sim.seeds import collection_seed


def _run(env: RobosuiteEnv, seed: int) -> tuple[bool, Counter]:
    env.reset(seed=seed)
    phases: Counter = Counter()
    for _ in range(env.max_steps):
        phases[env._expert.phase_name] += 1
        *_, info = env.step(env.expert_action())
        if info["success"]:
            return True, phases
    return False, phases


@given(yaw=st.floats(-np.pi, np.pi), angle=st.floats(0.0, 1.0), out=st.floats(-np.pi, np.pi))
def test_a_lean_tips_the_fingers_towards_outward_by_the_angle(yaw, angle, out):
    down = np.diag([1.0, -1.0, -1.0])  # fingers along world -z
    rot = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]]) @ down
    outward = np.array([np.cos(out), np.sin(out), 0.3])  # the vertical part is ignored
    leaned = _leaned(rot, outward, angle)
    fingers = leaned @ (rot.T @ np.array([0.0, 0.0, -1.0]))  # where the fingers point after the lean
    assert np.isclose(np.arccos(np.clip(-fingers[2], -1, 1)), angle, atol=1e-6)
    if angle > 1e-3:
        horizontal = fingers[:2] / np.linalg.norm(fingers[:2])
        np.testing.assert_allclose(horizontal, outward[:2] / np.linalg.norm(outward[:2]), atol=1e-6)
    np.testing.assert_allclose(leaned.T @ leaned, np.eye(3), atol=1e-9)


def test_kinova3_leans_to_reach_the_far_bin_and_its_linkage_gripper_settles():
    # episode 0: the quadrant's centre is out of Kinova3's reach with vertical fingers
    with RobosuiteEnv("PickPlaceCan", robot="Kinova3", cameras=()) as env:
        ok, phases = _run(env, collection_seed(0, task_index("PickPlaceCan"), 0))
        assert env._expert.lean > 0
    assert ok, phases
    assert phases["grasp"] < 30, phases  # the three fingers jitter on the can, and still count as settled


def test_stack_grasps_the_faces_that_keep_the_fingers_off_cube_b():
    # episode 0: cube B is 5 cm from A, in line with the fingers of the nearest grasp
    with RobosuiteEnv("Stack", robot="UR5e", cameras=()) as env:
        env.reset(seed=collection_seed(0, task_index("Stack"), 0))
        env.step(env.expert_action())
        ex = env._expert
        a_to_b = ex.body_pos(int(ex.sim.cubeB_body_id)) - ex.body_pos(ex.object_id())
        fingers = ex.grasp_rot @ env.finger_axis
        assert np.linalg.norm(a_to_b[:2]) < ex.near_b
        assert abs(fingers[:2] @ a_to_b[:2]) / np.linalg.norm(a_to_b[:2]) < np.cos(np.pi / 4) + 1e-6
        ok, phases = _run(env, collection_seed(0, task_index("Stack"), 0))
    assert ok, phases
