"""vla.models: vision-language-action policies (encoders, fusion transformer, action heads, save/load)."""

from .action_queue import ActionQueue, TemporalEnsembler
from .config import ConfigError, PolicyConfig
from .heads import HEADS, ActionHead, RegressionHead, build_head, register_head
from .language import FrozenTextEncoder, LanguageModelNotFound, get_text_encoder
from .normalize import NormalizationStats, TensorNormalizer
from .policy import Policy
from .serialization import PolicyLoadError
from .vision_hf import VisionModelNotFound

__all__ = [
    "HEADS", "ActionHead", "ActionQueue", "ConfigError", "FrozenTextEncoder", "LanguageModelNotFound",
    "NormalizationStats", "Policy", "PolicyConfig", "PolicyLoadError", "RegressionHead", "TensorNormalizer",
    "TemporalEnsembler", "VisionModelNotFound", "build_head", "get_text_encoder", "register_head",
]
