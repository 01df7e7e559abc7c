"""The robosuite robots this suite supports, with what a dataset should say about each."""

from __future__ import annotations

from dataclasses import dataclass

from vla.errors import VlaError


@dataclass(frozen=True)
class RobotInfo:
    """One robosuite robot: its robosuite name, our robot_type, embodiment facet and hardware words."""

    name: str  # robosuite's name (suite.make(robots=name))
    robot_type: str  # dataset robot_type (lower-case, robosuite_ prefix)
    embodiment_type: str  # vla.data.embodiment.EMBODIMENT_TYPES
    model: str  # what the robot is
    gripper: str  # its default gripper in robosuite
    # geoms whose collisions are switched off: robosuite 1.5.2's Sawyer base geom touches link 0 and
    # blocks the first joint (a constant ~19 N m constraint force)
    no_collision: tuple[str, ...] = ()


ROBOTS: dict[str, RobotInfo] = {r.name: r for r in (
    RobotInfo("Panda", "robosuite_panda", "fixed_base_arm", "Franka Emika Panda, 7-DoF (robosuite sim)",
              "Panda two-finger parallel gripper (PandaGripper)"),
    RobotInfo("Sawyer", "robosuite_sawyer", "fixed_base_arm", "Rethink Sawyer, 7-DoF (robosuite sim)",
              "Rethink electric parallel gripper (RethinkGripper)", no_collision=("robot0_base_col",)),
    RobotInfo("UR5e", "robosuite_ur5e", "fixed_base_arm", "Universal Robots UR5e, 6-DoF (robosuite sim)",
              "Robotiq 2F-85 (Robotiq85Gripper)"),
    RobotInfo("Kinova3", "robosuite_kinova3", "fixed_base_arm", "Kinova Gen3, 7-DoF (robosuite sim)",
              "Robotiq 2F-85 (Robotiq85Gripper)"),
    RobotInfo("IIWA", "robosuite_iiwa", "fixed_base_arm", "KUKA LBR iiwa 14, 7-DoF (robosuite sim)",
              "Robotiq 2F-140 (Robotiq140Gripper)"),
    RobotInfo("XArm7", "robosuite_xarm7", "fixed_base_arm", "UFACTORY xArm 7, 7-DoF (robosuite sim)",
              "xArm gripper (XArm7Gripper)"),
    RobotInfo("PandaOmron", "robosuite_panda_omron", "mobile_manipulator",
              "Franka Panda on an Omron mobile base with a torso lift (robosuite sim; base and torso held)",
              "Panda two-finger parallel gripper (PandaGripper)"),
)}


def robot_names() -> list[str]:
    """Every supported robot name, in registry order."""
    return list(ROBOTS)


def robot_info(name: str) -> RobotInfo:
    """The registry entry for ``name`` (case-insensitive); a VlaError naming the known robots otherwise."""
    for key, info in ROBOTS.items():
        if key.lower() == str(name).strip().lower():
            return info
    raise VlaError(f"unknown robosuite robot {name!r}; known robots: {', '.join(ROBOTS)}")
