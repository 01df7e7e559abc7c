"""The action-head interface, per-head option dataclasses, the registry, and shared loss helpers.

A head reads the backbone features of the H action readout tokens [B, H, d] and
- ``loss(features, target, mask)`` -> dict of scalar losses ("loss" is the one optimized; the others
  are logged), target being normalized actions [B, H, A] and mask bool [B, H, A] (False at time steps
  past the episode end and at action dimensions a sample does not have);
- ``predict(features, *, generator=None, steps=None, dim_mask=None)`` -> normalized actions [B, H, A];
  sampling heads draw their noise from ``generator`` (a ``torch.Generator``; None: torch's global RNG) and
  integrate over ``steps`` steps (None: their configured default). ``dim_mask`` (bool [B, A]) marks the
  action dimensions a sample has (a padded robot): the others come out 0, and a head that feeds its own
  outputs back (autoregressive bins, diffusion and flow) gives them there what it saw in training (PAD,
  noise over a zero target), so a padded dimension never changes the real ones.

Each head declares its settings as a frozen ``HeadOptions`` dataclass (``Head.Options``); a
PolicyConfig's ``head_options`` dict is parsed into it, and unknown keys or bad values raise
ConfigError naming what is known.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from vla.models.config import ConfigError


@dataclass(frozen=True)
class HeadOptions:
    """Base of every head's options; subclasses add fields (int, float, bool, str or Literal)."""

    head: ClassVar[str] = "?"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError for a value out of range (subclasses override)."""

    def fail(self, key: str, expected: str) -> None:
        raise ConfigError(f"head_options.{key} (head {self.head!r}): expected {expected}, got {getattr(self, key)!r}")

    @classmethod
    def parse(cls, data: dict[str, Any]) -> HeadOptions:
        """Options from a mapping; unknown keys and wrongly typed values raise ConfigError."""
        if not isinstance(data, dict):
            raise ConfigError(f"head_options: expected a mapping of option names to values, got {data!r}")
        hints = typing.get_type_hints(cls)
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"head_options: unknown key(s) {unknown} for head {cls.head!r}; "
                              f"known options: {sorted(known)}")
        return cls(**{key: _coerce(cls.head, key, value, hints[key]) for key, value in data.items()})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(head: str, key: str, value: Any, kind: Any) -> Any:
    where = f"head_options.{key} (head {head!r})"
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        if value not in choices:
            raise ConfigError(f"{where}: expected one of {list(choices)}, got {value!r}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value)  # YAML reads 1e-3 as a string
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from exc
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{where}: unsupported option type {kind!r}")  # a bug in the head, not in the config


class ActionHead(nn.Module):
    """Interface of every action head (see the module docstring)."""

    Options: ClassVar[type[HeadOptions]] = HeadOptions

    def __init__(self, d_model: int, action_dim: int, chunk: int, options: HeadOptions) -> None:
        super().__init__()
        self.d_model, self.action_dim, self.chunk, self.options = d_model, action_dim, chunk, options

    def loss(self, features: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def predict(self, features: torch.Tensor, *, generator: torch.Generator | None = None,
                steps: int | None = None, dim_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def no_steps(self, steps: int | None) -> None:
        """For heads without sampling steps: refuse a ``steps`` argument instead of ignoring it."""
        if steps is not None:
            raise ValueError(f"action head {type(self).__name__} has no sampling steps (got steps={steps})")

    @staticmethod
    def check_steps(steps: int) -> int:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
            raise ValueError(f"steps: expected a positive integer, got {steps!r}")
        return steps


HEADS: dict[str, type[ActionHead]] = {}


def register_head(name: str) -> Callable[[type[ActionHead]], type[ActionHead]]:
    """Class decorator: make a head available as PolicyConfig(head=name)."""

    def wrap(cls: type[ActionHead]) -> type[ActionHead]:
        if name in HEADS:
            raise ValueError(f"action head {name!r} is already registered")
        HEADS[name] = cls
        return cls

    return wrap


def head_class(name: str) -> type[ActionHead]:
    if name not in HEADS:
        raise ConfigError(f"head: unknown action head {name!r}; known heads: {sorted(HEADS)}")
    return HEADS[name]


def parse_head_options(name: str, options: dict[str, Any] | None = None) -> HeadOptions:
    """The options dataclass of head ``name`` from a mapping (ConfigError on any bad name or value)."""
    return head_class(name).Options.parse({} if options is None else options)


def build_head(name: str, d_model: int, action_dim: int, chunk: int,
               options: HeadOptions | dict[str, Any] | None = None) -> ActionHead:
    if not isinstance(options, HeadOptions):
        options = parse_head_options(name, options)
    return head_class(name)(d_model, action_dim, chunk, options)


# ---- shared helpers -------------------------------------------------------------------------------------
def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` [B, H, A, ...] over the positions where ``mask`` (bool, a prefix of its shape,
    e.g. [B, H, A] or [B, H]) is True; 0 when nothing is valid."""
    weights = mask.to(values.dtype).reshape(*mask.shape, *([1] * (values.ndim - mask.ndim))).expand_as(values)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def zero_padded_dims(actions: torch.Tensor, dim_mask: torch.Tensor | None) -> torch.Tensor:
    """Actions [B, H, A] with the dimensions ``dim_mask`` (bool [B, A]) excludes set to 0."""
    return actions if dim_mask is None else actions.masked_fill(~dim_mask[:, None, :], 0.0)


def masked_target(target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Target with masked entries set to 0, so nothing a head computes depends on their values."""
    return target.masked_fill(~mask, 0.0)


def regression_losses(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Masked L1 and MSE between predicted and target actions (for logging; detached)."""
    err = (pred.detach().float() - target.float())
    return {"l1": masked_mean(err.abs(), mask), "mse": masked_mean(err.square(), mask)}


def randn(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise in float32 on ``like``'s device, drawn from ``generator`` (on its own device)."""
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device, dtype=torch.float32).to(like.device)


def sincos_embedding(t: torch.Tensor, dim: int, min_period: float = 4e-3, max_period: float = 4.0) -> torch.Tensor:
    """Sine-cosine embedding [B, dim] of scalars t [B] in [0, 1] (periods from min_period to max_period)."""
    if dim % 2:
        raise ValueError(f"sincos_embedding: dim must be even, got {dim}")
    fraction = torch.linspace(0.0, 1.0, dim // 2, device=t.device, dtype=torch.float32)
    period = min_period * (max_period / min_period) ** fraction
    angle = t.float()[:, None] * (2 * math.pi / period)[None]
    return torch.cat([angle.sin(), angle.cos()], dim=-1)
