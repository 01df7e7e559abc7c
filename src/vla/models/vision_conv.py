"""CPU-friendly conv encoder: ResNet-style GroupNorm stem, FiLM on language (RT-1), spatial outputs.

Outputs tokens that keep WHERE things are: a ``grid x grid`` map of tokens with learned 2-D position
embeddings, plus ``keypoint_tokens`` tokens packing spatial-softmax keypoints (expected x, y of
``keypoints`` learned feature maps, read at an early, high-resolution stage: the stem output by
default, where a 2-3 pixel goal marker is still a distinct response).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _groups(channels: int) -> int:
    return max(1, min(8, channels // 8))


class FiLMResBlock(nn.Module):
    """conv-GN-ReLU-conv-GN, FiLM (gamma, beta from the condition), + skip, ReLU."""

    def __init__(self, channels: int, cond_dim: int | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(_groups(channels), channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(_groups(channels), channels)
        self.film = nn.Linear(cond_dim, 2 * channels) if cond_dim else None
        if self.film is not None:  # start as identity: gamma = 1, beta = 0
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        if self.film is not None and cond is not None:
            gamma, beta = self.film(cond).chunk(2, dim=-1)
            h = h * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]
        return F.relu(h + x)


class SpatialSoftmax(nn.Module):
    """1x1 conv to K maps, softmax over positions, expected (x, y) in [-1, 1] -> [B, 2K].

    The learned temperature starts low (0.1): with a soft start the expected positions all sit near
    the centre and the gradient is too weak to learn small targets (measured on a 3x3-pixel dot in
    128x128 images: ~30 px error after 400 steps with temperature 1, ~2 px with 0.1).
    """

    def __init__(self, channels: int, keypoints: int, init_temperature: float = 0.1) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, keypoints, 1)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(init_temperature)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        logits = self.proj(x).flatten(2) / self.log_temperature.exp()  # [B, K, HW]
        attn = logits.softmax(-1)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=attn.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=attn.dtype)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        ex = attn @ grid_x.reshape(-1, 1)
        ey = attn @ grid_y.reshape(-1, 1)
        return torch.cat([ex, ey], dim=-1).reshape(b, -1)


class ConvEncoder(nn.Module):
    """float images [B, 3, S, S] in [0, 1] + condition [B, cond_dim] -> tokens [B, N, d_model].

    Stages: a stem conv (kernel = stride = ``stem_stride`` when >= 4, a patchify stem; else 3x3) then
    one 3x3 stride-2 conv per further width; stage i is followed by ``blocks[i]`` FiLM residual blocks.
    Keypoints are read at stage ``keypoint_stage``. N = grid**2 + keypoint_tokens (if keypoints > 0).
    """

    def __init__(self, d_model: int, widths: list[int], blocks: list[int], grid: int, keypoints: int,
                 keypoint_tokens: int, cond_dim: int | None, stem_stride: int = 2,
                 keypoint_stage: int = -2) -> None:
        super().__init__()
        self.downs = nn.ModuleList()
        self.stages = nn.ModuleList()
        c_in = 3
        for i, (width, n_blocks) in enumerate(zip(widths, blocks, strict=True)):
            stride = stem_stride if i == 0 else 2
            kernel, pad = (stride, 0) if stride >= 4 else (3, 1)
            self.downs.append(nn.Sequential(
                nn.Conv2d(c_in, width, kernel, stride=stride, padding=pad, bias=False),
                nn.GroupNorm(_groups(width), width), nn.ReLU(inplace=True)))
            self.stages.append(nn.ModuleList(FiLMResBlock(width, cond_dim) for _ in range(n_blocks)))
            c_in = width
        self.grid = grid
        self.to_tokens = nn.Linear(widths[-1], d_model)
        self.pos = nn.Parameter(torch.randn(grid * grid, d_model) * 0.02)
        self.keypoint_stage = keypoint_stage % len(widths)
        self.keypoints = SpatialSoftmax(widths[self.keypoint_stage], keypoints) if keypoints else None
        self.keypoint_tokens = keypoint_tokens if keypoints else 0
        if self.keypoints is not None:
            self.kp_mlp = nn.Sequential(nn.Linear(2 * keypoints, d_model), nn.GELU(),
                                        nn.Linear(d_model, keypoint_tokens * d_model))
        self.num_tokens = grid * grid + self.keypoint_tokens

    def forward(self, images: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        # No input standardization: the GroupNorm after the stem conv removes any per-channel affine
        # change of the input, so pixels in [0, 1] go straight in (saves two passes over the batch).
        x = images.contiguous(memory_format=torch.channels_last)
        kp_source = None
        for i, (down, blocks) in enumerate(zip(self.downs, self.stages, strict=True)):
            x = down(x)
            for block in blocks:
                x = block(x, cond)
            if i == self.keypoint_stage:
                kp_source = x
        b = x.shape[0]
        if x.shape[-1] != self.grid:
            x = F.adaptive_avg_pool2d(x, self.grid)
        tokens = self.to_tokens(x.flatten(2).transpose(1, 2)) + self.pos  # [B, grid^2, d]
        if self.keypoints is not None:
            kp = self.kp_mlp(self.keypoints(kp_source)).reshape(b, self.keypoint_tokens, -1)
            tokens = torch.cat([tokens, kp], dim=1)
        return tokens
