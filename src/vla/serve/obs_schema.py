"""The observation a served policy accepts, checked key by key before any inference.

``{"images": {camera: uint8 [H, W, 3]}, "state": float[D], "instruction": str}`` with exactly the
cameras and shapes the server announced in its metadata; optional ``"reset": bool`` starts a new episode
(the server forgets the connection's safety and monitor history) and optional ``"step": int`` (>= 0) is the
client's control step the observation is from (the failure monitor's clock). A policy of several robots
announces each robot's cameras and state length under ``"embodiments"`` and needs ``"embodiment": name`` in
every observation, which is then checked against that robot's entry. openpi clients send
``"prompt"``: it is accepted as the instruction. Every error names the field, what was expected and what came.

numpy only (used by the server and by the robot-side client).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla.errors import VlaError

OPTIONAL_KEYS = ("reset", "step")


class ObservationError(VlaError, ValueError):
    """An observation does not match the policy's schema (the message names the field)."""


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {list(value.shape)}"
    return type(value).__name__


@dataclass(frozen=True)
class ObservationSpec:
    """What a policy reads: camera name -> [H, W, 3] (uint8), the state length, an instruction."""

    cameras: dict[str, tuple[int, int, int]]
    state_dim: int
    max_instruction_chars: int = 2000
    robots: dict[str, ObservationSpec] = field(default_factory=dict)  # several robots: name -> its own spec

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> ObservationSpec:
        try:
            cams = {str(k): tuple(int(x) for x in v) for k, v in meta["cameras"].items()}
            robots = {str(name): cls.from_metadata(entry) for name, entry in (meta.get("embodiments") or {}).items()}
            return cls(cams, int(meta["state_dim"]), robots=robots)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ObservationError(f"server metadata: cannot read cameras/state_dim ({exc!r})") from exc

    def to_metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cameras": {k: list(v) for k, v in self.cameras.items()}, "state_dim": self.state_dim}
        if self.robots:
            out["embodiments"] = {name: spec.to_metadata() for name, spec in self.robots.items()}
        return out

    def validate(self, obs: Any) -> dict[str, Any]:
        """Return the policy's observation dict (contiguous arrays) or raise ObservationError."""
        if not isinstance(obs, dict):
            raise ObservationError(f"observation: expected a map, got {_describe(obs)}")
        obs = dict(obs)
        if self.robots:
            name = obs.pop("embodiment", None)
            if not isinstance(name, str) or name not in self.robots:
                raise ObservationError(f"observation['embodiment']: expected one of {sorted(self.robots)} (this "
                                       f"policy drives several robots), got {_describe(name)} {name!r}")
            return {**self.robots[name].validate(obs), "embodiment": name}
        if "instruction" not in obs and "prompt" in obs:
            obs["instruction"] = obs.pop("prompt")
        required = ("images", "state", "instruction")
        missing = [k for k in required if k not in obs]
        extra = sorted(set(obs) - set(required) - set(OPTIONAL_KEYS))
        if missing or extra:
            raise ObservationError(f"observation: missing key(s) {missing}, unexpected key(s) {extra}; "
                                   f"expected {list(required)} and optionally {list(OPTIONAL_KEYS)}")
        images = obs["images"]
        if not isinstance(images, dict):
            raise ObservationError(f"observation['images']: expected a map camera -> image, got {_describe(images)}")
        unknown = sorted(set(images) - set(self.cameras))
        absent = sorted(set(self.cameras) - set(images))
        if unknown or absent:
            raise ObservationError(f"observation['images']: unknown camera(s) {unknown}, missing camera(s) {absent}; "
                                   f"this policy reads {sorted(self.cameras)}")
        out_images = {}
        for cam, shape in self.cameras.items():
            img = images[cam]
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.shape != shape:
                raise ObservationError(f"observation['images'][{cam!r}]: expected uint8 array of shape {list(shape)}, "
                                       f"got {_describe(img)}")
            out_images[cam] = np.ascontiguousarray(img)
        state = obs["state"]
        if not isinstance(state, np.ndarray) or state.dtype.kind not in "iuf" or state.shape != (self.state_dim,):
            raise ObservationError(f"observation['state']: expected a float array of shape [{self.state_dim}], "
                                   f"got {_describe(state)}")
        state = state.astype(np.float32)
        if not np.isfinite(state).all():
            bad = np.flatnonzero(~np.isfinite(state)).tolist()
            raise ObservationError(f"observation['state']: non-finite value(s) at index {bad} (NaN/Inf refused)")
        text = obs["instruction"]
        if not isinstance(text, str):
            raise ObservationError(f"observation['instruction']: expected a string, got {_describe(text)}")
        if len(text) > self.max_instruction_chars:
            raise ObservationError(f"observation['instruction']: {len(text)} characters, "
                                   f"the limit is {self.max_instruction_chars}")
        reset = obs.get("reset", False)
        if not isinstance(reset, bool | np.bool_):
            raise ObservationError(f"observation['reset']: expected a bool, got {_describe(reset)}")
        step = obs.get("step")
        if step is not None and (isinstance(step, bool | np.bool_) or not isinstance(step, int | np.integer)
                                 or step < 0):
            raise ObservationError(f"observation['step']: expected an integer >= 0, got {_describe(step)} {step!r}")
        return {"images": out_images, "state": state, "instruction": text, "reset": bool(reset),
                "step": None if step is None else int(step)}
