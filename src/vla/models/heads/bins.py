"""``bins``: each action dimension as one of ``n_bins`` (256) tokens over the normalized range [-1, 1]
(RT-2 / OpenVLA), trained with cross-entropy.

Actions arrive normalized by the policy; they are clipped to [-1, 1] and cut into equal bins, and a
token decodes to its bin's centre. Two decoders, chosen by ``decode``:
- "parallel" (OpenVLA-OFT): every readout token emits the logits of its time step's A dimensions in
  one forward pass;
- "autoregressive" (RT-2 / OpenVLA): a small causal transformer over the H x A tokens (time-major,
  dimensions within a time step), each token conditioned on the readout features and on the tokens
  before it; decoding runs H x A steps with a key/value cache.
``temperature`` 0 takes the most likely token; > 0 samples (seeded through the generator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .base import ActionHead, HeadOptions, masked_mean, register_head, zero_padded_dims
from .expert import ChunkExpert


@dataclass(frozen=True)
class BinsOptions(HeadOptions):
    """Bins per dimension, decoder, sampling temperature, and the autoregressive decoder's size."""

    head: ClassVar[str] = "bins"
    n_bins: int = 256
    decode: Literal["parallel", "autoregressive"] = "parallel"
    temperature: float = 0.0
    width: int = 128
    layers: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0

    def validate(self) -> None:
        if not 2 <= self.n_bins <= 65536:
            self.fail("n_bins", "an integer in 2..65536")
        if self.temperature < 0:
            self.fail("temperature", "a number >= 0 (0: most likely token)")
        for key in ("width", "layers", "heads"):
            if getattr(self, key) <= 0:
                self.fail(key, "a positive integer")
        if self.width % self.heads:
            self.fail("width", f"a multiple of heads ({self.heads})")
        if self.mlp_ratio <= 0:
            self.fail("mlp_ratio", "a number > 0")


def rand(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform [0, 1) noise on ``like``'s device, drawn from ``generator`` on its own device."""
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=device, dtype=torch.float32).to(like.device)


def pick_tokens(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """Argmax (temperature 0) or a sample from softmax(logits / temperature) (Gumbel-max), [...]."""
    if temperature == 0:
        return logits.argmax(-1)
    u = rand(tuple(logits.shape), logits, generator).clamp_(1e-10, 1.0 - 1e-7)
    return (logits.float() / temperature - torch.log(-torch.log(u))).argmax(-1)


@register_head("bins")
class BinsHead(ActionHead):
    """Discretized actions, parallel or autoregressive decoding (see the module docstring)."""

    Options = BinsOptions

    def __init__(self, d_model: int, action_dim: int, chunk: int, options: BinsOptions) -> None:
        super().__init__(d_model, action_dim, chunk, options)
        n = options.n_bins
        self.register_buffer("centers", torch.linspace(-1 + 1 / n, 1 - 1 / n, n), persistent=False)
        if options.decode == "parallel":
            self.logits = nn.Linear(d_model, action_dim * n)
        else:
            w, tokens = options.width, chunk * action_dim
            self.embed = nn.Embedding(n + 2, w)  # bins, then PAD (a masked previous token), then BOS
            self.pos = nn.Parameter(torch.randn(tokens, w) * 0.02)
            self.step_proj = nn.Linear(d_model, w)  # each token also gets its own time step's readout
            self.expert = ChunkExpert(d_model, chunk, w, options.layers, options.heads, options.mlp_ratio,
                                      causal=True)
            self.logits = nn.Linear(w, n)

    # ---- tokens ------------------------------------------------------------------------------------------
    def tokenize(self, actions: torch.Tensor) -> torch.Tensor:
        """Normalized actions -> bin indices (long), after clipping to [-1, 1]."""
        n = self.options.n_bins
        return ((actions.float().clamp(-1, 1) + 1) * (n / 2)).floor().clamp_(0, n - 1).long()

    def detokenize(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.centers[tokens]

    # ---- model -------------------------------------------------------------------------------------------
    def _ar_inputs(self, features: torch.Tensor, prev: torch.Tensor, start: int) -> torch.Tensor:
        """Input embeddings of token positions start..start+k-1 given their previous tokens prev [B, k]."""
        k, a = prev.shape[1], self.action_dim
        steps = torch.arange(start, start + k, device=features.device) // a
        return self.embed(prev) + self.pos[start:start + k] + self.step_proj(features)[:, steps]

    def _teacher_forced_logits(self, features: torch.Tensor, labels: torch.Tensor,
                               mask: torch.Tensor) -> torch.Tensor:
        b = features.shape[0]
        n = self.options.n_bins
        if self.options.decode == "parallel":
            return self.logits(features).view(b, self.chunk, self.action_dim, n)
        flat = torch.where(mask, labels, torch.full_like(labels, n)).reshape(b, -1)  # masked -> PAD
        prev = torch.cat([torch.full((b, 1), n + 1, dtype=torch.long, device=flat.device), flat[:, :-1]], dim=1)
        out, _ = self.expert(self._ar_inputs(features, prev, 0), self.expert.context(features))
        return self.logits(out).view(b, self.chunk, self.action_dim, n)

    def loss(self, features: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        labels = self.tokenize(target)
        logits = self._teacher_forced_logits(features, labels, mask)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), reduction="none")
        ce = masked_mean(ce.view(labels.shape), mask)
        best = logits.detach().argmax(-1)
        return {"loss": ce, "accuracy": masked_mean((best == labels).float(), mask),
                "l1": masked_mean((self.detokenize(best) - target.float()).abs(), mask)}

    def predict(self, features: torch.Tensor, *, generator: torch.Generator | None = None,
                steps: int | None = None, dim_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.no_steps(steps)
        b, n, t = features.shape[0], self.options.n_bins, self.options.temperature
        if self.options.decode == "parallel":
            logits = self.logits(features).view(b, self.chunk, self.action_dim, n)
            return zero_padded_dims(self.detokenize(pick_tokens(logits, t, generator)), dim_mask)
        context = self.expert.context(features)
        prev = torch.full((b, 1), n + 1, dtype=torch.long, device=features.device)
        past = None
        tokens = []
        for i in range(self.chunk * self.action_dim):
            out, past = self.expert(self._ar_inputs(features, prev, i), context, past)
            prev = pick_tokens(self.logits(out), t, generator)
            if dim_mask is not None:  # a padded dimension: PAD, as in training (masked_target -> PAD)
                prev = torch.where(dim_mask[:, i % self.action_dim, None], prev, torch.full_like(prev, n))
            tokens.append(prev)
        tokens_all = torch.cat(tokens, dim=1).view(b, self.chunk, self.action_dim).clamp(max=n - 1)
        return zero_padded_dims(self.detokenize(tokens_all), dim_mask)
