"""Optimizer pieces: AdamW parameter groups, warmup + cosine learning rate, EMA of the weights."""

from __future__ import annotations

import math

import torch
from torch import nn


def adamw(model: nn.Module, lr: float, weight_decay: float, scaled_prefixes: tuple[str, ...] = (),
          lr_scale: float = 1.0) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices/kernels only (not on biases, norms, embeddings' 1-D params).

    Trainable parameters whose names start with one of ``scaled_prefixes`` (pretrained weights being
    fine-tuned) go into groups with ``lr_scale``: the training loop sets each group's lr to the
    schedule's lr times its "lr_scale"."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in sorted(model.named_parameters()):
        if p.requires_grad:
            scaled = bool(scaled_prefixes) and name.startswith(scaled_prefixes)
            groups.setdefault((scaled, p.ndim >= 2), []).append(p)
    out = []
    for scaled in (False, True):
        for decay in (True, False):
            params = groups.get((scaled, decay), [])
            if params or not scaled:  # the two unscaled groups always exist (checkpoints made before scaling)
                out.append({"params": params, "weight_decay": weight_decay if decay else 0.0,
                            "lr_scale": lr_scale if scaled else 1.0})
    return torch.optim.AdamW(out, lr=lr, betas=(0.9, 0.999), eps=1e-8)


def lr_at(step: int, base_lr: float, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup over ``warmup`` steps, then cosine decay to ``base_lr * min_ratio`` at ``total``."""
    if warmup and step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class EMA:
    """Exponential moving average of every floating-point entry of a model's state_dict.

    decay ramps up as min(decay, (1 + n) / (10 + n)) with n updates so far, so early averages are
    not dominated by the random initialization.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        state = model.state_dict()
        for k, v in self.shadow.items():
            v.lerp_(state[k].detach(), 1.0 - d)
        self.updates += 1

    def state_dict_for(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's state_dict with the averaged floating-point entries."""
        return {k: self.shadow.get(k, v) for k, v in model.state_dict().items()}
