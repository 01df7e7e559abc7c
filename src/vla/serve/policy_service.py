"""Load a saved vla policy for serving: the predict function, the observation spec and the metadata.

Names and the control rate come from the training run's dataset (RUN/train_config.json -> the dataset's
meta/info.json embodiment spec, restored from its feature copy after a LeRobot edit) when that is still on
disk; otherwise generic names and ``fps: None``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.vla_block import restore_vla_block
from vla.errors import VlaError
from vla.serve.obs_schema import ObservationSpec


def _dataset_embodiment(policy_dir: Path) -> dict[str, Any]:
    """The embodiment block and fps of the dataset the policy was trained on, or {} if unknown."""
    for cfg in (policy_dir / "train_config.json", policy_dir.parent / "train_config.json"):
        if not cfg.is_file():
            continue
        try:
            dataset = Path(json.loads(cfg.read_text())["dataset"])
            info = restore_vla_block(json.loads((dataset / "meta" / "info.json").read_text()))
        except (OSError, KeyError, TypeError, ValueError, VlaError):
            return {}
        spec = (info.get("vla") or {}).get("embodiment") if isinstance(info.get("vla"), dict) else None
        spec = spec if isinstance(spec, dict) else {}  # a dataset without an embodiment spec stores null
        return {"fps": info.get("fps"), "state_names": spec.get("state_names"),
                "action_names": spec.get("action_names"), "robot_type": info.get("robot_type")}
    return {}


def load_policy_service(path: str | Path, device: str = "cpu") -> tuple[Callable[[dict], np.ndarray],
                                                                       ObservationSpec, dict[str, Any]]:
    """(predict, spec, metadata) for the policy folder or run folder at ``path``."""
    import vla
    from vla.models import Policy
    from vla.models.serialization import resolve_policy_dir

    policy_dir = resolve_policy_dir(path)
    policy = Policy.from_pretrained(policy_dir, device=device)
    c = policy.config
    emb = _dataset_embodiment(policy_dir)
    state_names = emb.get("state_names") or [f"state.{i}" for i in range(c.state_dim)]
    action_names = emb.get("action_names") or [f"action.{i}" for i in range(c.action_dim)]
    if len(state_names) != c.state_dim or len(action_names) != c.action_dim:
        state_names = [f"state.{i}" for i in range(c.state_dim)]
        action_names = [f"action.{i}" for i in range(c.action_dim)]
    image = (c.image_size, c.image_size, 3)
    robots = {e.name: ObservationSpec({cam: image for cam in e.cameras}, e.state_dim)
              for e in (policy.registry.embodiments if policy.registry is not None else [])}
    spec = ObservationSpec({cam: image for cam in c.cameras}, c.state_dim, robots=robots)
    metadata = {
        "policy": {"name": policy_dir.parent.name if policy_dir.name == "policy" else policy_dir.name,
                   "path": str(policy_dir), "head": c.head, "parameters": policy.num_parameters(),
                   "trainable_parameters": policy.num_parameters(trainable_only=True),
                   "vision_encoder": c.vision_encoder, "language_encoder": c.language_encoder},
        "vla_version": vla.__version__,
        "state_dim": c.state_dim, "action_dim": c.action_dim,
        "state_names": list(state_names), "action_names": list(action_names),
        "chunk": c.chunk, "n_action_steps": c.n_action_steps, "fps": emb.get("fps"),
        # the server keeps these cameras' first frame of each episode (a connection's first observation, or
        # the one sent with reset=True) and feeds it beside the current one
        "context_cameras": list(c.context_cameras),
        "robot_type": emb.get("robot_type"), "instruction": "string (empty allowed)" if c.instruction_dropout > 0
        else "non-empty string",
    }
    if policy.registry is not None:  # several robots: each one's cameras, state and action layout
        metadata["robot_type"] = None
        metadata["embodiments"] = {e.name: {**robots[e.name].to_metadata(), "action_dim": e.action_dim,
                                            "state_names": e.state_names or [f"state.{i}" for i in range(e.state_dim)],
                                            "action_names": e.action_names
                                            or [f"action.{i}" for i in range(e.action_dim)],
                                            "fps": e.control_rate_hz or None}
                                   for e in policy.registry.embodiments}
    return policy.predict_chunk, spec, metadata
