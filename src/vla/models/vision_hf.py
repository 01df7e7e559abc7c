"""Pretrained Hugging Face vision towers (SigLIP, DINOv2, CLIP vision, ...) from a local folder.

Loads with transformers (no hub access), applies the tower's own image normalization and input
size, drops prefix tokens (CLS, registers), average-pools the patch grid to ``grid x grid`` tokens
and projects them to d_model. Frozen towers run without gradients and stay in eval mode.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vla.errors import VlaError

from .image_ops import resize

_DEFAULT_NORM = {  # used when the folder has no preprocessor_config.json
    "siglip": ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    "clip": ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]),
}
_IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


class VisionModelNotFound(VlaError, FileNotFoundError):
    """The vision tower folder recorded in a policy config is missing or incomplete."""


def _image_norm(folder: Path, model_type: str) -> tuple[list[float], list[float]]:
    pre = folder / "preprocessor_config.json"
    if pre.is_file():
        data = json.loads(pre.read_text())
        if "image_mean" in data and "image_std" in data:
            return list(data["image_mean"]), list(data["image_std"])
    for prefix, norm in _DEFAULT_NORM.items():
        if model_type.startswith(prefix):
            return norm
    return _IMAGENET


def load_vision_tower(path: str) -> tuple[nn.Module, object]:
    """(vision module, its config) from a local folder holding a full or vision-only model."""
    from transformers import AutoConfig, AutoModel

    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise VisionModelNotFound(f"vision tower folder {str(folder)!r} does not exist or has no config.json")
    config = AutoConfig.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder))
    if hasattr(model, "vision_model") and hasattr(config, "vision_config"):  # full CLIP / SigLIP
        return model.vision_model, config.vision_config
    return model, config


class HFVisionEncoder(nn.Module):
    """float images [B, 3, H, W] in [0, 1] -> tokens [B, grid**2, d_model]."""

    def __init__(self, path: str, d_model: int, grid: int, frozen: bool = True) -> None:
        super().__init__()
        self.tower, vcfg = load_vision_tower(path)
        self.frozen = frozen
        self.input_size = int(vcfg.image_size)
        self.patch_size = int(vcfg.patch_size)
        mean, std = _image_norm(Path(path).expanduser(), str(getattr(vcfg, "model_type", "")))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.grid = grid
        self.proj = nn.Linear(int(vcfg.hidden_size), d_model)
        self.pos = nn.Parameter(torch.randn(grid * grid, d_model) * 0.02)
        self.num_tokens = grid * grid
        if frozen:
            for p in self.tower.parameters():
                p.requires_grad_(False)
            self.tower.eval()

    def train(self, mode: bool = True) -> HFVisionEncoder:
        super().train(mode)
        if self.frozen:
            self.tower.eval()
        return self

    def forward(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x = (resize(images, self.input_size) - self.mean) / self.std
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            hidden = self.tower(pixel_values=x).last_hidden_state  # [B, prefix + P, hidden]
        side = self.input_size // self.patch_size
        patches = hidden[:, hidden.shape[1] - side * side:]
        if side * side != patches.shape[1] or side != math.isqrt(patches.shape[1]):
            raise RuntimeError(f"vision tower returned {hidden.shape[1]} tokens, expected >= {side * side}")
        b, _, c = patches.shape
        fmap = patches.transpose(1, 2).reshape(b, c, side, side)
        if side != self.grid:
            fmap = F.adaptive_avg_pool2d(fmap, self.grid)
        return self.proj(fmap.flatten(2).transpose(1, 2)) + self.pos
