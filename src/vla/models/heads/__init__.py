"""Action heads behind one interface (vla.models.heads.base) and a registry that finds them by name:
``regression``, ``bins``, ``diffusion``, ``flow`` (one module each)."""

from .base import HEADS, ActionHead, HeadOptions, build_head, head_class, masked_mean, parse_head_options, register_head
from .bins import BinsHead, BinsOptions
from .diffusion import DiffusionHead, DiffusionOptions
from .flow import FlowHead, FlowOptions
from .regression import RegressionHead, RegressionOptions

__all__ = [
    "HEADS", "ActionHead", "BinsHead", "BinsOptions", "DiffusionHead", "DiffusionOptions", "FlowHead",
    "FlowOptions", "HeadOptions", "RegressionHead", "RegressionOptions", "build_head", "head_class",
    "masked_mean", "parse_head_options", "register_head",
]
