"""The embodiment registry of a multi-robot policy: per robot its state/action layout, control rate,
cameras and normalization stats, and the padded per-sample normalization used in training.

A policy trained on several robots pads every state and action to one size: the largest robot's
(``max_state_dim``, ``max_action_dim``) or more (``PolicyConfig.state_dim`` / ``action_dim``). Each robot
keeps its own statistics, in its own units; in model space a padded dimension is always 0 and masked out of
the loss, so what a batch holds there never matters. Stored as embodiments.json in the policy folder (JSON,
no pickle); a single-robot policy has no registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vla.errors import VlaError

from .normalize import NormalizationStats, TensorNormalizer

EMBODIMENTS_FILE = "embodiments.json"
FORMAT_VERSION = 1


class EmbodimentError(VlaError, ValueError):
    """An unknown embodiment name, or a registry that does not match its policy."""


@dataclass
class Embodiment:
    """One robot as the policy sees it; ``cameras`` are the policy cameras this robot has."""

    name: str
    stats: NormalizationStats
    state_names: list[str] = field(default_factory=list)
    action_names: list[str] = field(default_factory=list)
    control_rate_hz: float = 0.0
    cameras: list[str] = field(default_factory=list)

    @property
    def state_dim(self) -> int:
        return self.stats.state_dim

    @property
    def action_dim(self) -> int:
        return self.stats.action_dim

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state_dim": self.state_dim, "action_dim": self.action_dim,
                "state_names": list(self.state_names), "action_names": list(self.action_names),
                "control_rate_hz": float(self.control_rate_hz), "cameras": list(self.cameras),
                "normalization": self.stats.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Embodiment:
        if not isinstance(data, dict):
            raise EmbodimentError(f"{where}: expected an object, got {type(data).__name__}")
        for key in ("name", "normalization"):
            if key not in data:
                raise EmbodimentError(f"{where}: missing field {key!r}")
        try:
            stats = NormalizationStats.from_dict(data["normalization"])
        except ValueError as exc:
            raise EmbodimentError(f"{where}.normalization: {exc}") from exc
        emb = cls(str(data["name"]), stats, list(data.get("state_names") or []),
                  list(data.get("action_names") or []), float(data.get("control_rate_hz") or 0.0),
                  list(data.get("cameras") or []))
        for key, actual in (("state_dim", emb.state_dim), ("action_dim", emb.action_dim)):
            if key in data and int(data[key]) != actual:
                raise EmbodimentError(f"{where}.{key}: {data[key]} but its normalization has {actual}")
        for key, dim in (("state_names", emb.state_dim), ("action_names", emb.action_dim)):
            names = getattr(emb, key)
            if names and len(names) != dim:
                raise EmbodimentError(f"{where}.{key}: {len(names)} names for {dim} dimensions")
        return emb


@dataclass
class EmbodimentRegistry:
    """Embodiments in a fixed order (a sample's embodiment id is its index here)."""

    embodiments: list[Embodiment]

    def __post_init__(self) -> None:
        names = [e.name for e in self.embodiments]
        if not names:
            raise EmbodimentError("embodiment registry: no embodiments")
        if len(set(names)) != len(names):
            raise EmbodimentError(f"embodiment registry: duplicate names in {names}")

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.embodiments]

    @property
    def max_state_dim(self) -> int:
        return max(e.state_dim for e in self.embodiments)

    @property
    def max_action_dim(self) -> int:
        return max(e.action_dim for e in self.embodiments)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise EmbodimentError(f"embodiment {name!r}: unknown to this policy; it knows {self.names}") from None

    def __getitem__(self, name: str) -> Embodiment:
        return self.embodiments[self.index(name)]

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "embodiments": [e.to_dict() for e in self.embodiments]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> EmbodimentRegistry:
        if not isinstance(data, dict) or not isinstance(data.get("embodiments"), list):
            raise EmbodimentError("embodiments: expected {'format_version': 1, 'embodiments': [...]}")
        if data.get("format_version") != FORMAT_VERSION:
            raise EmbodimentError(f"embodiments: format_version {data.get('format_version')!r} "
                                  f"(this vla reads {FORMAT_VERSION})")
        return cls([Embodiment.from_dict(e, f"embodiments[{i}]") for i, e in enumerate(data["embodiments"])])

    @classmethod
    def from_json(cls, text: str) -> EmbodimentRegistry:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EmbodimentError(f"embodiments: invalid JSON ({exc})") from exc
        return cls.from_dict(data)


def _padded(rows: list[np.ndarray], width: int, fill: float) -> torch.Tensor:
    out = np.full((len(rows), width), fill, dtype=np.float32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return torch.from_numpy(out)


class PaddedNormalizer(torch.nn.Module):
    """Per-sample model-space maps for a batch of mixed embodiments (dataset units in, padded to the max).

    ``state(x, ids)`` and ``action(x, ids)`` normalize each row with its embodiment's statistics and set the
    padded dimensions to exactly 0; ``action_dims(ids)`` is the bool mask [B, A_max] of real action dims.
    Buffers are not persistent: the statistics live in embodiments.json. ``norms``: the robots' own
    normalizers when the caller already has them (one per registry entry), else made here."""

    def __init__(self, registry: EmbodimentRegistry, state_mode: str, state_dim: int | None = None,
                 action_dim: int | None = None, norms: list[TensorNormalizer] | None = None) -> None:
        super().__init__()
        norms = norms if norms is not None else [TensorNormalizer(e.stats, state_mode) for e in registry.embodiments]
        if len(norms) != len(registry.embodiments):
            raise EmbodimentError(f"{len(norms)} normalizers for {len(registry.embodiments)} robots")
        self.quantile = norms[0].state_mode == "quantile"
        s, a = state_dim or registry.max_state_dim, action_dim or registry.max_action_dim
        if s < registry.max_state_dim or a < registry.max_action_dim:
            raise EmbodimentError(f"padded sizes {s}/{a} are smaller than the largest robot's "
                                  f"{registry.max_state_dim}/{registry.max_action_dim}")
        for name, rows, width, fill in (
                ("state_shift", [n.state_shift.numpy() for n in norms], s, 0.0),
                ("state_scale", [n.state_scale.numpy() for n in norms], s, 1.0),
                ("action_shift", [n.action_shift.numpy() for n in norms], a, 0.0),
                ("action_scale", [n.action_scale.numpy() for n in norms], a, 1.0)):
            self.register_buffer(name, _padded(rows, width, fill), persistent=False)
        self.register_buffer("state_valid", _padded([np.ones(e.state_dim) for e in registry.embodiments], s, 0) > 0,
                             persistent=False)
        self.register_buffer("action_valid", _padded([np.ones(e.action_dim) for e in registry.embodiments], a, 0) > 0,
                             persistent=False)

    def state(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Dataset-unit states [B, S_max] -> model space, padded dims 0."""
        y = (x - self.state_shift[ids]) / self.state_scale[ids]  # [B, S_max]
        if self.quantile:
            y = y.clamp(-1.0, 1.0)
        return y.masked_fill(~self.state_valid[ids], 0.0)

    def action(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Dataset-unit actions [B, H, A_max] -> model space, padded dims 0."""
        y = (x - self.action_shift[ids][:, None]) / self.action_scale[ids][:, None]  # [B, H, A_max]
        return y.masked_fill(~self.action_valid[ids][:, None], 0.0)

    def action_dims(self, ids: torch.Tensor) -> torch.Tensor:
        return self.action_valid[ids]  # [B, A_max]
