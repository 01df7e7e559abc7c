"""DART-style perturbations of scripted demonstrations: labels stay the expert's, the start pose and the
executed actions move, the gripper is never touched, and everything is reproducible from the seed."""

from __future__ import annotations

import numpy as np

from vla.sim.rollout import run_expert_episode


class PointEnv:
    """A 3-D point plus a gripper value; the expert drives the point to the origin and closes the gripper."""

    task = "point"
    instruction = "go home"
    cameras: tuple[str, ...] = ()

    def reset(self, seed=None):
        self.pos = np.array([0.5, -0.4, 0.3])
        self.grip = 1.0
        self.gripper_commands: list[float] = []
        return self._obs(), {}

    def _obs(self):
        return {"state": np.array([*self.pos, self.grip], np.float32), "images": {}}

    def expert_action(self):
        return np.array([*np.clip(-2.0 * self.pos, -1, 1), -1.0], np.float32)

    def step(self, action):
        self.pos = self.pos + 0.05 * np.asarray(action[:3], np.float64)
        self.grip = float(action[3])
        self.gripper_commands.append(float(action[3]))
        done = bool(np.linalg.norm(self.pos) < 0.02)
        return self._obs(), 0.0, False, False, {"success": done}


def test_unperturbed_episodes_follow_the_expert_exactly():
    env = PointEnv()
    ep = run_expert_episode(env, seed=3, steps_after_success=0)
    assert ep.success and np.allclose(ep.states[0, :3], [0.5, -0.4, 0.3])
    nxt = ep.states[:-1, :3] + 0.05 * ep.actions[:-1, :3]
    np.testing.assert_allclose(ep.states[1:, :3], nxt, atol=1e-6)  # the executed action is the label


def test_labels_stay_the_experts_while_the_executed_actions_are_noisy():
    env = PointEnv()
    ep = run_expert_episode(env, seed=3, steps_after_success=0, action_noise=0.3)
    assert ep.success
    expected = np.clip(-2.0 * ep.states[:, :3].astype(np.float64), -1, 1)
    np.testing.assert_allclose(ep.actions[:, :3], expected, atol=1e-5)  # clean labels for the states seen
    nxt = ep.states[:-1, :3] + 0.05 * ep.actions[:-1, :3]
    assert np.abs(ep.states[1:, :3] - nxt).max() > 1e-3  # the motion was not the label's
    assert set(env.gripper_commands) == {-1.0}  # the gripper is never perturbed


def test_the_start_pose_moves_and_everything_repeats_with_the_seed():
    starts = set()
    for seed in range(6):
        ep = run_expert_episode(PointEnv(), seed=seed, steps_after_success=0, start_steps=10, action_noise=0.2)
        again = run_expert_episode(PointEnv(), seed=seed, steps_after_success=0, start_steps=10, action_noise=0.2)
        np.testing.assert_array_equal(ep.states, again.states)
        starts.add(tuple(np.round(ep.states[0, :3], 4)))
    assert len(starts) >= 4  # random pre-roll lengths and directions (0 steps keeps the home pose)
