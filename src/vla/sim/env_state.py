"""The privileged simulator state recorded beside MetaWorld demonstrations (a training target only).

``observation.environment_state`` holds the object poses and the goal position that the scripted expert
reads. A policy never takes it as an input; an auxiliary loss may learn to predict it from the images.
"""

from __future__ import annotations

ENV_STATE_KEY = "observation.environment_state"
# the first object's position and quaternion, the second object's (zeros where a task has one object),
# and the goal position
ENV_STATE_NAMES = [f"{obj}_{c}" for obj in ("obj1", "obj2") for c in ("x", "y", "z", "qw", "qx", "qy", "qz")] + [
    "goal_x", "goal_y", "goal_z"]
