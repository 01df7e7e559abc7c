"""Action heads behind one interface, and a registry so new kinds plug in by name.

A head reads the backbone features of the H action readout tokens [B, H, d] and
- ``loss(features, target, mask)`` -> dict of scalar losses ("loss" is optimized), target being
  normalized actions [B, H, A] and mask bool [B, H] (False past the episode end);
- ``predict(features)`` -> normalized actions [B, H, A].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class ActionHead(nn.Module):
    """Interface of every action head."""

    def __init__(self, d_model: int, action_dim: int, chunk: int) -> None:
        super().__init__()
        self.d_model, self.action_dim, self.chunk = d_model, action_dim, chunk

    def loss(self, features: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


HEADS: dict[str, type[ActionHead]] = {}


def register_head(name: str) -> Callable[[type[ActionHead]], type[ActionHead]]:
    """Class decorator: make a head available as PolicyConfig(head=name)."""

    def wrap(cls: type[ActionHead]) -> type[ActionHead]:
        if name in HEADS:
            raise ValueError(f"action head {name!r} is already registered")
        HEADS[name] = cls
        return cls

    return wrap


def build_head(name: str, d_model: int, action_dim: int, chunk: int) -> ActionHead:
    if name not in HEADS:
        raise ValueError(f"unknown action head {name!r}; registered: {sorted(HEADS)}")
    return HEADS[name](d_model, action_dim, chunk)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of values [B, H, A] over the positions where mask [B, H] is True."""
    weights = mask.to(values.dtype)[..., None].expand_as(values)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


@register_head("regression")
class RegressionHead(ActionHead):
    """Linear readout per action token, trained with L1 on the masked chunk."""

    def __init__(self, d_model: int, action_dim: int, chunk: int) -> None:
        super().__init__(d_model, action_dim, chunk)
        self.proj = nn.Linear(d_model, action_dim)

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(features)

    def loss(self, features: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        l1 = masked_mean((self.predict(features) - target).abs(), mask)
        return {"loss": l1, "l1": l1.detach()}
