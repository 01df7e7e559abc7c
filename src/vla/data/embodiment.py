"""Embodiment spec: what a robot's action and state vectors mean, its control rate and cameras.

Stored under the ``"vla"`` key of meta/info.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from vla.data.errors import DatasetError

EMBODIMENT_TYPES = (
    "fixed_base_arm",
    "bimanual",
    "mobile_manipulator",
    "humanoid",
    "quadruped",
    "mobile_base",
    "other",
)


@dataclass
class EmbodimentSpec:
    """Names and sizes of a robot's action/state vectors, its control rate and cameras."""

    name: str
    robot_type: str
    embodiment_type: str = "other"
    action_space: str = ""
    action_names: list[str] = field(default_factory=list)
    state_names: list[str] = field(default_factory=list)
    control_rate_hz: float = 0.0
    cameras: list[str] = field(default_factory=list)
    gripper_dims: list[int] = field(default_factory=list)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    def validate(self) -> EmbodimentSpec:
        if self.embodiment_type not in EMBODIMENT_TYPES:
            raise DatasetError(
                None,
                f"embodiment field 'embodiment_type' must be one of {', '.join(EMBODIMENT_TYPES)}; "
                f"got {self.embodiment_type!r}",
            )
        if self.control_rate_hz < 0:
            raise DatasetError(None, "embodiment field 'control_rate_hz' must be >= 0")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["action_dim"] = self.action_dim
        d["state_dim"] = self.state_dim
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | EmbodimentSpec) -> EmbodimentSpec:
        if isinstance(d, EmbodimentSpec):
            return d
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
