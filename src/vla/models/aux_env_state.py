"""Auxiliary training target: the simulator's object and goal positions, predicted from the readouts.

A policy reads images, state and instruction only. In simulation the scene's object poses and goal are
known (``observation.environment_state``); asking the readout features to predict them makes the
backbone carry where the goal is, which the actions need. Used in training only; the prediction is
normalized per dimension with the training data's mean and standard deviation (kept as buffers, so
they are saved with the policy).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

STD_FLOOR = 1e-3  # dimensions that never change (unused object slots) get a target of 0


class EnvStateHead(nn.Module):
    """features [B, H, d] -> predicted normalized environment state [B, E]; ``loss`` is the MSE."""

    def __init__(self, d_model: int, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, d_model), nn.GELU(),
                                 nn.Linear(d_model, dim))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_stats(self, values: np.ndarray) -> None:
        """Normalization from the training frames' environment states [N, E]."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.mean.shape[0] or values.shape[0] == 0:
            raise ValueError(f"environment_state: expected [N, {self.mean.shape[0]}] values, got {values.shape}")
        self.mean.copy_(torch.from_numpy(values.mean(0)).float())
        self.std.copy_(torch.from_numpy(np.maximum(values.std(0), STD_FLOOR)).float())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features.mean(1))  # [B, H, d] -> [B, d] -> [B, E]

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """MSE between the prediction and the normalized target [B, E]."""
        normalized = (target.float() - self.mean) / self.std  # [B, E]
        return (self(features) - normalized).square().mean()
