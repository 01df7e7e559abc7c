"""A small transformer over chunk tokens that attends to the backbone's readout features (pi0-style
action expert, used by the flow head, the diffusion head's transformer denoiser and autoregressive bins).

Every block attends over [the conditioning tokens' keys/values | the chunk tokens]. The conditioning
keys/values depend only on the backbone features, so ``context(features)`` computes them once per
prediction and every denoising / integration / decoding step reuses them. With ``causal=True`` chunk
token i sees tokens <= i only, and ``forward(..., past=...)`` extends a cached prefix token by token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import sincos_embedding

KV = tuple[torch.Tensor, torch.Tensor]


class ExpertBlock(nn.Module):
    """Pre-LN attention over (conditioning + chunk tokens) and an MLP, applied to the chunk tokens."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.cond_norm = nn.LayerNorm(width)
        self.cond_kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def _split(self, x: torch.Tensor, parts: int) -> list[torch.Tensor]:
        b, n, _ = x.shape
        return list(x.view(b, n, parts, self.heads, -1).permute(2, 0, 3, 1, 4))  # each [B, heads, n, dh]

    def context(self, cond: torch.Tensor) -> KV:
        k, v = self._split(self.cond_kv(self.cond_norm(cond)), 2)
        return k, v

    def forward(self, x: torch.Tensor, context: KV, past: KV | None = None,
                causal: bool = False) -> tuple[torch.Tensor, KV]:
        b, n, d = x.shape
        q, k, v = self._split(self.qkv(self.norm1(x)), 3)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        mask = None
        if causal and n > 1:
            p, m = context[0].shape[2], k.shape[2] - n  # conditioning tokens, cached chunk tokens
            mask = torch.ones(n, p + m + n, dtype=torch.bool, device=x.device)
            mask[:, p + m:] = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        h = F.scaled_dot_product_attention(q, torch.cat([context[0], k], dim=2), torch.cat([context[1], v], dim=2),
                                           attn_mask=mask)
        x = x + self.out(h.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x)), (k, v)


class ChunkExpert(nn.Module):
    """Chunk tokens [B, N, width] conditioned on backbone features [B, P, d_cond] -> [B, N, width]."""

    def __init__(self, d_cond: int, n_cond: int, width: int, layers: int, heads: int, mlp_ratio: float,
                 causal: bool = False) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"expert width ({width}) must be divisible by its heads ({heads})")
        self.causal = causal
        self.cond_proj = nn.Linear(d_cond, width)
        self.cond_pos = nn.Parameter(torch.randn(n_cond, width) * 0.02)
        self.blocks = nn.ModuleList(ExpertBlock(width, heads, mlp_ratio) for _ in range(layers))
        self.norm = nn.LayerNorm(width)

    def context(self, features: torch.Tensor) -> list[KV]:
        """Per-block keys/values of the conditioning tokens (compute once, reuse for every step)."""
        cond = self.cond_proj(features) + self.cond_pos[: features.shape[1]]
        return [block.context(cond) for block in self.blocks]

    def forward(self, tokens: torch.Tensor, context: list[KV],
                past: list[KV] | None = None) -> tuple[torch.Tensor, list[KV]]:
        """Output features of ``tokens`` and every block's chunk keys/values (``past`` for the next call)."""
        cache = []
        x = tokens
        for i, block in enumerate(self.blocks):
            x, kv = block(x, context[i], None if past is None else past[i], self.causal)
            cache.append(kv)
        return self.norm(x), cache


class ChunkDenoiser(nn.Module):
    """Noisy chunk x [B, H, A] + a time embedding + backbone features -> [B, H, A] (a velocity or a noise
    estimate). Each chunk token mixes its action with the time through an MLP (pi0's action-time MLP:
    the action and time projections are summed, then SiLU and a linear layer), then a non-causal
    ChunkExpert runs over the H tokens. ``embed_time`` is separate so a sampler embeds all its times
    in one call."""

    def __init__(self, d_cond: int, chunk: int, action_dim: int, width: int, layers: int, heads: int,
                 mlp_ratio: float) -> None:
        super().__init__()
        self.width = width
        self.action_in = nn.Linear(action_dim, width)
        self.time_in = nn.Linear(width, width)
        self.mix_out = nn.Linear(width, width)
        self.pos = nn.Parameter(torch.randn(chunk, width) * 0.02)
        self.expert = ChunkExpert(d_cond, chunk, width, layers, heads, mlp_ratio)
        self.action_out = nn.Linear(width, action_dim)

    def context(self, features: torch.Tensor) -> list[KV]:
        return self.expert.context(features)

    def embed_time(self, t: torch.Tensor) -> torch.Tensor:
        """Times t [N] in [0, 1] -> [N, width]."""
        return self.time_in(sincos_embedding(t, self.width))

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor, context: list[KV]) -> torch.Tensor:
        """``time_emb`` [B, width] (or [1, width] for a time shared by the batch) from ``embed_time``."""
        h = x.shape[1]
        tokens = self.mix_out(F.silu(self.action_in(x) + time_emb.to(x.dtype)[:, None])) + self.pos[:h]
        out, _ = self.expert(tokens, context)
        return self.action_out(out)
