"""Small policies and inputs for model tests."""

from __future__ import annotations

import numpy as np
import torch

from vla.models import NormalizationStats, PolicyConfig

CAMERAS = ["corner4", "gripperPOV"]


def tiny_config(**changes) -> PolicyConfig:
    base = dict(cameras=CAMERAS, image_size=32, chunk=4, n_action_steps=2, d_model=32, layers=1, heads=2,
                vision_widths=[8, 16], vision_blocks=[0, 1], vision_grid=2, keypoint_stage=0, vision_keypoints=4,
                keypoint_tokens=1, augment_shift=2)
    return PolicyConfig(**{**base, **changes})


def stats(state_dim: int = 4, action_dim: int = 4) -> NormalizationStats:
    rng = np.random.default_rng(0)
    return NormalizationStats.from_arrays(rng.normal(size=(50, state_dim)) * 2 + 1,
                                          rng.uniform(-2, 3, size=(50, action_dim)))


def batch(config: PolicyConfig, b: int = 3, size: int | None = None) -> dict:
    g = torch.Generator().manual_seed(0)
    s = size or config.image_size
    return {
        "images": {c: torch.randint(0, 256, (b, s, s, 3), dtype=torch.uint8, generator=g) for c in config.cameras},
        "state": torch.randn(b, config.state_dim, generator=g),
        "instruction": ["open the drawer", "close the drawer", "open the drawer"][:b] + ["reach"] * max(0, b - 3),
        "action": torch.rand(b, config.chunk, config.action_dim, generator=g) * 5 - 2,
        "action_mask": torch.ones(b, config.chunk, dtype=torch.bool),
    }


def obs(config: PolicyConfig, seed: int = 0, size: int | None = None) -> dict:
    rng = np.random.default_rng(seed)
    s = size or config.image_size
    return {"images": {c: rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for c in config.cameras},
            "state": rng.normal(size=config.state_dim).astype(np.float32), "instruction": "open the drawer"}
