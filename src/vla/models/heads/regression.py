"""``regression``: a linear readout per action token, trained with L1 (RT-1 / ACT style) or MSE."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from .base import ActionHead, HeadOptions, masked_mean, register_head, regression_losses, zero_padded_dims


@dataclass(frozen=True)
class RegressionOptions(HeadOptions):
    """``loss``: "l1" (default) or "mse" on the normalized chunk."""

    head: ClassVar[str] = "regression"
    loss: Literal["l1", "mse"] = "l1"


@register_head("regression")
class RegressionHead(ActionHead):
    """Linear readout per action token; deterministic."""

    Options = RegressionOptions

    def __init__(self, d_model: int, action_dim: int, chunk: int, options: RegressionOptions) -> None:
        super().__init__(d_model, action_dim, chunk, options)
        self.proj = nn.Linear(d_model, action_dim)

    def predict(self, features: torch.Tensor, *, generator: torch.Generator | None = None,
                steps: int | None = None, dim_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.no_steps(steps)
        return zero_padded_dims(self.proj(features), dim_mask)

    def loss(self, features: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        pred = self.proj(features)
        err = pred - target
        loss = masked_mean(err.abs() if self.options.loss == "l1" else err.square(), mask)
        return {"loss": loss, **regression_losses(pred, target, mask)}
