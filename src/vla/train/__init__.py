"""vla.train: the training loop (cache, AdamW + warmup/cosine, EMA, checkpoints/resume, torchrun)."""

from .cache import TrainingCache, build_cache
from .config import TrainConfig, make_config
from .loop import train

__all__ = ["TrainConfig", "TrainingCache", "build_cache", "make_config", "train"]
