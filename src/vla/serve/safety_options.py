"""Which safety config guards which robot: the ``vla serve --safety`` values resolved against a policy.

A one-robot policy takes one config: a YAML/JSON file or ``metaworld_sawyer`` (the shipped one). A policy of
several robots takes ``ROBOT=CONFIG`` for every robot it drives: a robot left out would be served without
limits, so that is refused, as is a robot the policy does not know. Each config must have its robot's
number of action dims, and its state dims when it names them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vla.serve.safety import SafetyConfig, load_safety_config

SafetyChoice = SafetyConfig | dict[str, SafetyConfig] | None  # one robot, one config per robot, or no filter


def load_named_config(value: str) -> SafetyConfig:
    """``metaworld_sawyer`` or the path of a YAML/JSON config."""
    return SafetyConfig.for_metaworld_sawyer() if value == "metaworld_sawyer" else load_safety_config(value)


def _check_dims(option: str, cfg: SafetyConfig, action_dim: int, state_dim: int | None, who: str) -> None:
    if cfg.action_dim != action_dim:
        raise ValueError(f"--safety {option}: {cfg.action_dim} action dims, {who} has {action_dim}")
    if cfg.state_dim is not None and state_dim is not None and cfg.state_dim != state_dim:
        raise ValueError(f"--safety {option}: state_dim {cfg.state_dim}, {who} has {state_dim}")


def resolve_safety(values: Sequence[str], metadata: Mapping[str, Any]) -> SafetyChoice:
    """The config(s) ``values`` name for the policy described by ``metadata`` (``load_policy_service``'s)."""
    if not values:
        return None
    robots: Mapping[str, Any] = metadata.get("embodiments") or {}
    if not robots:
        if len(values) > 1 or "=" in values[0]:
            raise ValueError(f"--safety {' '.join(values)}: this policy drives one robot: give one config "
                             "(a file or 'metaworld_sawyer'), without ROBOT=")
        cfg = load_named_config(values[0])
        _check_dims(values[0], cfg, int(metadata["action_dim"]), int(metadata["state_dim"]), "the policy")
        return cfg
    chosen: dict[str, SafetyConfig] = {}
    for value in values:
        name, sep, source = value.partition("=")
        if not sep or not name or not source:
            raise ValueError(f"--safety {value}: this policy drives several robots {sorted(robots)}: give "
                             "ROBOT=CONFIG for each")
        if name not in robots:
            raise ValueError(f"--safety {value}: unknown robot {name!r}; this policy drives {sorted(robots)}")
        if name in chosen:
            raise ValueError(f"--safety {value}: robot {name!r} is given twice")
        cfg = load_named_config(source)
        entry = robots[name]
        _check_dims(value, cfg, int(entry["action_dim"]), int(entry["state_dim"]), f"robot {name!r}")
        chosen[name] = cfg
    missing = sorted(set(robots) - set(chosen))
    if missing:
        raise ValueError(f"--safety: no config for robot(s) {missing}; each robot this policy drives needs "
                         "ROBOT=CONFIG (a robot left out would be served without limits)")
    return chosen
