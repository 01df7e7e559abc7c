"""``diffusion``: DDPM training (epsilon prediction, cosine noise schedule) and DDIM sampling in a
configurable number of steps (Octo, Diffusion Policy), conditioned on the readout features.

Denoisers (``denoiser``): "mlp", Octo-style residual MLP on the flattened chunk, the flattened readout
features and a time embedding; or "transformer", the pi0-style expert over the chunk tokens
(vla.models.heads.expert). The initial noise of sampling comes from the generator; with ``eta`` 0
(DDIM) nothing else is random, so a seed fixes the chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from .base import (
    ActionHead,
    HeadOptions,
    masked_mean,
    masked_target,
    randn,
    register_head,
    sincos_embedding,
    zero_padded_dims,
)
from .expert import ChunkDenoiser


@dataclass(frozen=True)
class DiffusionOptions(HeadOptions):
    """Schedule, sampler and denoiser settings of the diffusion head."""

    head: ClassVar[str] = "diffusion"
    train_steps: int = 100              # DDPM timesteps T
    steps: int = 10                     # DDIM sampling steps (<= train_steps)
    schedule: Literal["cosine", "linear"] = "cosine"
    eta: float = 0.0                    # DDIM stochasticity (0: deterministic given the initial noise)
    clip_sample: float = 1.0            # clip the x0 estimate to [-c, c] while sampling (0: no clipping)
    denoiser: Literal["mlp", "transformer"] = "mlp"
    hidden: int = 128                   # mlp
    blocks: int = 3                     # mlp
    time_dim: int = 32                  # mlp
    width: int = 128                    # transformer
    layers: int = 2                     # transformer
    heads: int = 4                      # transformer
    mlp_ratio: float = 2.0

    def validate(self) -> None:
        for key in ("train_steps", "steps", "hidden", "blocks", "width", "layers", "heads"):
            if getattr(self, key) <= 0:
                self.fail(key, "a positive integer")
        if self.steps > self.train_steps:
            self.fail("steps", f"at most train_steps ({self.train_steps})")
        if self.time_dim <= 0 or self.time_dim % 2:
            self.fail("time_dim", "a positive even integer")
        if self.width % self.heads:
            self.fail("width", f"a multiple of heads ({self.heads})")
        if self.eta < 0:
            self.fail("eta", "a number >= 0")
        if self.clip_sample < 0:
            self.fail("clip_sample", "a number >= 0 (0: no clipping)")
        if self.mlp_ratio <= 0:
            self.fail("mlp_ratio", "a number > 0")


def alphas_cumprod(schedule: str, steps: int) -> torch.Tensor:
    """Cumulative products of (1 - beta_t), t = 0..steps-1: cosine (Nichol & Dhariwal) or linear (DDPM)."""
    if schedule == "cosine":
        s = 0.008
        t = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    else:
        betas = torch.linspace(1e-4 * 1000 / steps, 0.02 * 1000 / steps, steps, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0).float()


class MLPDenoiser(nn.Module):
    """Octo-style: [flattened noisy chunk | time embedding | flattened readout features] -> residual MLP."""

    def __init__(self, d_model: int, chunk: int, action_dim: int, options: DiffusionOptions) -> None:
        super().__init__()
        o = options
        self.time_dim = o.time_dim
        self.time_mlp = nn.Sequential(nn.Linear(o.time_dim, 2 * o.time_dim), nn.SiLU(),
                                      nn.Linear(2 * o.time_dim, o.time_dim))
        self.cond_proj = nn.Linear(chunk * d_model, o.hidden)
        self.inp = nn.Linear(chunk * action_dim + o.time_dim, o.hidden)
        hidden = int(o.hidden * o.mlp_ratio)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(o.hidden), nn.Linear(o.hidden, hidden), nn.SiLU(), nn.Linear(hidden, o.hidden))
            for _ in range(o.blocks))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(o.hidden, chunk * action_dim))

    def context(self, features: torch.Tensor) -> torch.Tensor:
        return self.cond_proj(features.flatten(1))

    def embed_time(self, t: torch.Tensor) -> torch.Tensor:
        """Times t [N] in [0, 1] -> [N, time_dim]."""
        return self.time_mlp(sincos_embedding(t, self.time_dim))

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        time_emb = time_emb.to(x.dtype).expand(x.shape[0], -1)
        h = self.inp(torch.cat([x.flatten(1), time_emb], dim=-1)) + context
        for block in self.blocks:
            h = h + block(h)
        return self.out(h).view_as(x)


@register_head("diffusion")
class DiffusionHead(ActionHead):
    """DDPM-trained noise predictor, DDIM sampler (see the module docstring)."""

    Options = DiffusionOptions

    def __init__(self, d_model: int, action_dim: int, chunk: int, options: DiffusionOptions) -> None:
        super().__init__(d_model, action_dim, chunk, options)
        o = options
        self.register_buffer("alpha_bar", alphas_cumprod(o.schedule, o.train_steps), persistent=False)
        self.denoiser = (MLPDenoiser(d_model, chunk, action_dim, o) if o.denoiser == "mlp" else
                         ChunkDenoiser(d_model, chunk, action_dim, o.width, o.layers, o.heads, o.mlp_ratio))

    def _time(self, t: torch.Tensor) -> torch.Tensor:
        """Embeddings of integer timesteps t [N] (as t / T in [0, 1))."""
        return self.denoiser.embed_time(t.float() / self.options.train_steps)

    def loss(self, features: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        x0 = masked_target(target.float(), mask)
        b = x0.shape[0]
        t = torch.randint(0, self.options.train_steps, (b,), device=x0.device)
        noise = torch.randn_like(x0)
        ab = self.alpha_bar[t][:, None, None]
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        err = self.denoiser(x_t, self._time(t), self.denoiser.context(features)) - noise
        return {"loss": masked_mean(err.square(), mask)}

    def timesteps(self, steps: int) -> list[int]:
        """The DDIM subsequence of timesteps, from T-1 down to 0."""
        t_max = self.options.train_steps - 1
        return sorted({round(t_max * (1 - i / max(1, steps - 1))) for i in range(steps)} if steps > 1 else {t_max},
                      reverse=True)

    def predict(self, features: torch.Tensor, *, generator: torch.Generator | None = None,
                steps: int | None = None, dim_mask: torch.Tensor | None = None) -> torch.Tensor:
        o = self.options
        steps = self.check_steps(o.steps if steps is None else steps)
        if steps > o.train_steps:
            raise ValueError(f"steps: at most train_steps ({o.train_steps}), got {steps}")
        b = features.shape[0]
        context = self.denoiser.context(features)
        x = randn((b, self.chunk, self.action_dim), features, generator)
        noise = x
        pad = None if dim_mask is None else ~dim_mask[:, None, :]  # [B, 1, A]
        ts = self.timesteps(steps)
        times = self._time(torch.tensor(ts, device=x.device))
        for i, t in enumerate(ts):
            ab = self.alpha_bar[t]
            ab_prev = self.alpha_bar[ts[i + 1]] if i + 1 < len(ts) else torch.ones_like(ab)
            eps = self.denoiser(x, times[i:i + 1], context).float()
            x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
            if o.clip_sample > 0:
                x0 = x0.clamp(-o.clip_sample, o.clip_sample)
                eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
            sigma = o.eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp(min=0).sqrt()
            x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma ** 2).clamp(min=0).sqrt() * eps
            if o.eta > 0 and i + 1 < len(ts):
                x = x + sigma * randn(tuple(x.shape), x, generator)
            if pad is not None:  # padded dims follow training's x_t = sqrt(1 - alpha_bar) * noise (zero target)
                x = torch.where(pad, (1 - ab_prev).sqrt() * noise, x)
        return zero_padded_dims(x, dim_mask)
