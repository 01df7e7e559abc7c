"""TrainConfig: what a training run does, loaded from JSON/YAML and ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vla.models.config import ConfigError, PolicyConfig

from .episode_select import parse_episodes

_POLICY_FIELDS = {f.name for f in dataclasses.fields(PolicyConfig)}


@dataclass
class TrainConfig:
    """One training run. ``batch_size`` is per process (global batch = batch_size x world size).

    ``policy`` holds PolicyConfig fields to set (state_dim/action_dim come from the dataset).
    ``cache_dir`` (default: $VLA_CACHE_DIR, else RUN/cache) holds the decoded image cache; point
    several runs at one folder to share it. ``episodes`` trains on some episodes only: indices and
    half-open ranges, ``"0:10,50:60"`` or ``[3, 7]`` (``max_episodes`` then keeps the first N of them).

    ``extra_datasets``: more datasets whose frames join ``dataset``'s (one cache each, sampled as one pool of
    frames; same state/action sizes and cameras; normalization still comes from ``dataset``).
    ``init_policy``: a policy folder to fine-tune: its weights, settings and normalization are the start
    (``policy`` must then be empty).

    ``mixture``: several datasets sampled by weight (`vla.train.mixture`; ``vla train --dataset A --dataset
    B:0.5``), ``[{"dataset": path, "weight": w}, ...]`` whose first entry is ``dataset``; datasets of different
    robots make a multi-robot policy. ``mixture_balance``: probability ~ weight x frames (default), else ~ weight.
    """

    dataset: str = ""
    out: str = ""
    policy: dict[str, Any] = field(default_factory=dict)
    steps: int = 15000
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-2
    warmup_steps: int = 500
    min_lr_ratio: float = 0.05
    pretrained_lr_scale: float = 0.1  # lr factor of pretrained vision weights fine-tuned (vision_frozen=false)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 2000
    keep_checkpoints: int = 2
    eval_every: int = 0
    cache_dir: str | None = None
    num_threads: int | None = None
    bf16: bool | None = None
    device: str = "auto"
    prefetch: int = 6
    max_episodes: int | None = None
    episodes: str | list[int] | None = None
    progress: bool = True
    extra_datasets: list[str] = field(default_factory=list)
    init_policy: str | None = None
    mixture: list[Any] = field(default_factory=list)
    mixture_balance: bool = True

    def __post_init__(self) -> None:
        for name in ("lr", "weight_decay", "min_lr_ratio", "grad_clip", "ema_decay", "pretrained_lr_scale"):
            setattr(self, name, _as_float(name, getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        if self.steps == 0 and self.init_policy is not None:
            pass  # zero steps: init_policy saved as this run's policy (with the robots a mixture adds: zero-shot)
        elif not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps <= 0:
            raise ConfigError(f"steps: expected a positive integer (0 only with init_policy), got {self.steps!r}")
        for name in ("batch_size", "log_every", "checkpoint_every", "keep_checkpoints", "prefetch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
        for name in ("warmup_steps", "eval_every", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name}: expected an integer >= 0, got {value!r}")
        if not self.lr > 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("lr > 0, weight_decay >= 0 and grad_clip >= 0 (0 disables clipping)")
        if not 0 < self.pretrained_lr_scale <= 1:
            raise ConfigError(f"pretrained_lr_scale: expected 0 < scale <= 1, got {self.pretrained_lr_scale}")
        if not 0 <= self.ema_decay < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("ema_decay in [0, 1) and min_lr_ratio in [0, 1]")
        parse_episodes(self.episodes)
        if not isinstance(self.policy, dict):
            raise ConfigError("policy: expected a mapping of PolicyConfig fields")
        if not isinstance(self.extra_datasets, list) or not all(isinstance(d, str) and d for d in self.extra_datasets):
            raise ConfigError(f"extra_datasets: expected a list of dataset paths, got {self.extra_datasets!r}")
        if self.init_policy is not None:
            if not isinstance(self.init_policy, str) or not self.init_policy:
                raise ConfigError(f"init_policy: expected a policy folder path, got {self.init_policy!r}")
            if self.policy:
                raise ConfigError(f"policy: {sorted(self.policy)} set together with init_policy; a fine-tuned policy "
                                  "keeps the settings of init_policy (leave policy empty)")
        if self.mixture:
            from .mixture import parse_mixture

            entries = parse_mixture(self.mixture)
            self.mixture = [{"dataset": e.dataset, "weight": e.weight} for e in entries]
            if self.dataset and entries[0].dataset != self.dataset:
                raise ConfigError(f"mixture: its first dataset ({entries[0].dataset}) must be dataset ({self.dataset})")
            if self.extra_datasets:
                raise ConfigError("mixture and extra_datasets: use one of them (a mixture samples its datasets by "
                                  "weight; extra_datasets pools frames)")
        if not isinstance(self.mixture_balance, bool):
            raise ConfigError(f"mixture_balance: expected true or false, got {self.mixture_balance!r}")
        unknown = sorted(set(self.policy) - _POLICY_FIELDS)
        if unknown:
            raise ConfigError(f"policy: unknown key(s) {unknown}; known keys: {sorted(_POLICY_FIELDS)}")
        try:  # every policy setting (the action head and its options too) is checked before any work
            PolicyConfig.from_dict(self.policy)
        except ConfigError as exc:
            raise ConfigError(f"policy.{exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"train config: unknown key(s) {unknown}; known keys: {sorted(known)} "
                              f"(policy fields go under 'policy' or as policy.<name>=...)")
        return cls(**data)


def _as_float(name: str, value: Any) -> float:
    """Numbers as floats; numeric strings too (YAML reads 1e-3 as a string)."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: expected a number, got {value!r}") from exc


def parse_value(raw: str) -> Any:
    """An override's value: int, float (1e-3 included), else YAML (true, null, [a, b], text)."""
    text = raw.strip()
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text) if text else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse value {raw!r} ({exc})") from exc


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON (.json) or YAML (.yaml/.yml) mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot parse ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``key=value`` strings (values parsed as YAML: 1e-3, true, null, [a, b]) applied to a dict.

    ``policy.<field>=v`` sets a policy field; a bare PolicyConfig field name (``d_model=192``) too;
    ``policy.head_options.<option>=v`` (or ``head_options.<option>=v``) one option of the action head.
    """
    out = {**data, "policy": dict(data.get("policy") or {})}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        # episode ranges stay text: YAML would read "10:20" as a base-60 number
        value = raw.strip() if key == "episodes" and ":" in raw else parse_value(raw)
        option = key.removeprefix("policy.")
        if option.startswith("head_options."):
            options = out["policy"].get("head_options")
            out["policy"]["head_options"] = {**(options if isinstance(options, dict) else {}),
                                             option.removeprefix("head_options."): value}
        elif key.startswith("policy."):
            out["policy"][key.removeprefix("policy.")] = value
        elif key in train_fields and key != "policy":
            out[key] = value
        elif key in _POLICY_FIELDS:
            out["policy"][key] = value
        else:
            raise ConfigError(f"override {item!r}: unknown key {key!r}; train keys: {sorted(train_fields)}, "
                              f"policy keys: {sorted(_POLICY_FIELDS)}")
    return out


def make_config(dataset: str | Path | list[str], out: str | Path, config_file: str | Path | None = None,
                overrides: list[str] | None = None) -> TrainConfig:
    """TrainConfig from an optional file, then overrides, then the --dataset/--out paths. Several datasets
    (``["A", "B:0.5"]``, each ``PATH[:WEIGHT]``) make a mixture whose first entry is the dataset."""
    from .mixture import parse_dataset_arg

    data = load_config_file(config_file) if config_file else {}
    data = apply_overrides(data, list(overrides or []))
    items = [str(d) for d in dataset] if isinstance(dataset, list) else [str(dataset)]
    if not items:
        raise ConfigError("--dataset: at least one dataset is required")
    entries = [parse_dataset_arg(d) for d in items] if len(items) > 1 else [parse_dataset_arg(items[0])]
    if len(entries) > 1:
        data["mixture"] = [{"dataset": e.dataset, "weight": e.weight} for e in entries]
    data["dataset"], data["out"] = entries[0].dataset if len(entries) > 1 else items[0], str(out)
    return TrainConfig.from_dict(data)
