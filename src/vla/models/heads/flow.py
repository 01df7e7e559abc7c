"""``flow``: flow matching as in pi0: x_t = t * noise + (1 - t) * actions, the action expert predicts
the velocity noise - actions, training times come from Beta(1.5, 1) (more weight on noisy times), and
sampling integrates from t = 1 (noise, drawn from the generator) to t = 0 with ``steps`` Euler steps
(default 10).

The action expert (vla.models.heads.expert.ChunkDenoiser) is a small transformer over the H chunk
tokens that attends to the backbone's readout features; their keys/values are computed once per chunk
and reused by every integration step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .base import ActionHead, HeadOptions, masked_mean, masked_target, randn, register_head, zero_padded_dims
from .expert import ChunkDenoiser


@dataclass(frozen=True)
class FlowOptions(HeadOptions):
    """Integration steps, training-time distribution Beta(time_alpha, time_beta), expert size."""

    head: ClassVar[str] = "flow"
    steps: int = 10
    time_alpha: float = 1.5
    time_beta: float = 1.0
    width: int = 128
    layers: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0

    def validate(self) -> None:
        for key in ("steps", "width", "layers", "heads"):
            if getattr(self, key) <= 0:
                self.fail(key, "a positive integer")
        if self.width % self.heads or self.width % 2:
            self.fail("width", f"an even multiple of heads ({self.heads})")
        for key in ("time_alpha", "time_beta", "mlp_ratio"):
            if getattr(self, key) <= 0:
                self.fail(key, "a number > 0")


@register_head("flow")
class FlowHead(ActionHead):
    """Flow-matching action expert (see the module docstring)."""

    Options = FlowOptions

    def __init__(self, d_model: int, action_dim: int, chunk: int, options: FlowOptions) -> None:
        super().__init__(d_model, action_dim, chunk, options)
        o = options
        self.expert = ChunkDenoiser(d_model, chunk, action_dim, o.width, o.layers, o.heads, o.mlp_ratio)

    def sample_time(self, b: int, device: torch.device) -> torch.Tensor:
        """Training times in [0.001, 1]: Beta(time_alpha, time_beta), drawn from torch's global RNG."""
        o = self.options
        beta = torch.distributions.Beta(torch.tensor(o.time_alpha), torch.tensor(o.time_beta))
        return (beta.sample((b,)) * 0.999 + 0.001).to(device)

    def loss(self, features: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        x0 = masked_target(target.float(), mask)
        t = self.sample_time(x0.shape[0], x0.device)
        noise = torch.randn_like(x0)
        x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * x0
        v = self.expert(x_t, self.expert.embed_time(t), self.expert.context(features))
        return {"loss": masked_mean((v - (noise - x0)).square(), mask)}

    def predict(self, features: torch.Tensor, *, generator: torch.Generator | None = None,
                steps: int | None = None, dim_mask: torch.Tensor | None = None) -> torch.Tensor:
        steps = self.check_steps(self.options.steps if steps is None else steps)
        b = features.shape[0]
        context = self.expert.context(features)
        x = randn((b, self.chunk, self.action_dim), features, generator)
        noise = x
        pad = None if dim_mask is None else ~dim_mask[:, None, :]  # [B, 1, A]
        dt = 1.0 / steps
        times = self.expert.embed_time(1.0 - dt * torch.arange(steps, device=x.device))  # t = 1, 1 - dt, ...
        for k in range(steps):
            x = x - dt * self.expert(x, times[k:k + 1], context).float()
            if pad is not None:  # padded dims follow training's x_t = t * noise + (1 - t) * 0
                x = torch.where(pad, (1.0 - dt * (k + 1)) * noise, x)
        return zero_padded_dims(x, dim_mask)
