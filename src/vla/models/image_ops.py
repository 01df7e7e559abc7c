"""Small image operations on tensors (torchvision is not available here): layout, resize, shift."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_float_nchw(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float32 [B, 3, H, W] in [0, 1]."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images: expected uint8 [B, H, W, 3], got {images.dtype} {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear, antialiased resize of float [B, C, H, W] to [B, C, size, size] (no-op if already)."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> uint8 [B, size, size, 3], used to build the training cache."""
    if images.shape[1:3] == (size, size):
        return images
    out = resize(to_float_nchw(images), size).mul_(255.0).round_().clamp_(0, 255)
    return out.to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ-style augmentation on uint8 [B, H, W, C]: shift each sample by a random integer offset in
    [-pad, pad] on both axes, replicating the border (same as replicate-pad then random crop)."""
    if pad <= 0:
        return images
    b, h, w = images.shape[:3]
    offsets = torch.randint(-pad, pad + 1, (b, 2), generator=generator).tolist()
    base_h = torch.arange(h, device=images.device)
    base_w = torch.arange(w, device=images.device)
    out = torch.empty_like(images)
    for i, (dy, dx) in enumerate(offsets):
        rows = (base_h + dy).clamp_(0, h - 1)
        cols = (base_w + dx).clamp_(0, w - 1)
        out[i] = images[i].index_select(0, rows).index_select(1, cols)
    return out
