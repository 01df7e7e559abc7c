"""Scripted MetaWorld experts (``metaworld.policies``), looked up by task name."""

from __future__ import annotations

from typing import Any


def expert_class(task: str) -> type:
    """The metaworld scripted-policy class for ``task`` (e.g. ``SawyerReachV3Policy`` for reach-v3)."""
    from metaworld.policies import ENV_POLICY_MAP

    try:
        return ENV_POLICY_MAP[task]
    except KeyError:
        raise ValueError(f"no scripted expert for task {task!r}; known: {', '.join(ENV_POLICY_MAP)}") from None


def expert_id(task: str) -> str:
    """Stable collector id naming the expert class, e.g. ``metaworld.policies.SawyerReachV3Policy``."""
    return f"metaworld.policies.{expert_class(task).__name__}"


def make_expert(task: str) -> Any:
    """A fresh scripted expert; its ``get_action(full_obs)`` needs metaworld's full 39-d observation."""
    return expert_class(task)()
