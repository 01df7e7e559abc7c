"""Policy folder I/O: config.json + model.safetensors + normalization.json, atomic, no pickle."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vla.errors import VlaError

from .config import ConfigError, PolicyConfig
from .embodiments import EMBODIMENTS_FILE, EmbodimentError, EmbodimentRegistry
from .normalize import NormalizationStats

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
NORMALIZATION_FILE = "normalization.json"
POLICY_FILES = (CONFIG_FILE, WEIGHTS_FILE, NORMALIZATION_FILE)


class PolicyLoadError(VlaError, ValueError):
    """A policy folder is missing, incomplete, corrupt or inconsistent."""


def resolve_policy_dir(path: str | Path) -> Path:
    """Accept a policy folder or a training run folder (whose final policy is RUN/policy)."""
    p = Path(path)
    for cand in (p, p / "policy"):
        if (cand / CONFIG_FILE).is_file() and (cand / WEIGHTS_FILE).is_file():
            return cand
    raise FileNotFoundError(f"{p}: no policy here (expected {CONFIG_FILE} + {WEIGHTS_FILE} in it or in {p}/policy)")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """safetensors file written atomically (temp + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_policy_folder(folder: Path, config: PolicyConfig, tensors: dict[str, torch.Tensor],
                        stats: NormalizationStats, registry: EmbodimentRegistry | None = None) -> None:
    """Write the three files (and embodiments.json for a multi-robot policy), each atomically; weights first
    so config.json marks a complete folder."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(folder / WEIGHTS_FILE, tensors, metadata={"format": "pt", "producer": "vla"})
    atomic_write_text(folder / NORMALIZATION_FILE, stats.to_json())
    if registry is not None:
        atomic_write_text(folder / EMBODIMENTS_FILE, registry.to_json())
    else:
        (folder / EMBODIMENTS_FILE).unlink(missing_ok=True)
    atomic_write_text(folder / CONFIG_FILE, config.to_json())


def read_policy_folder(folder: str | Path) -> tuple[PolicyConfig, dict[str, torch.Tensor], NormalizationStats,
                                                    EmbodimentRegistry | None]:
    """Read and validate a policy folder; every failure raises PolicyLoadError naming the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PolicyLoadError(f"policy folder {str(folder)!r} does not exist")
    if not (folder / CONFIG_FILE).exists() and (folder / "policy" / CONFIG_FILE).is_file():
        folder = folder / "policy"  # a training run folder: its final policy
    missing = [name for name in POLICY_FILES if not (folder / name).is_file()]
    if missing:
        raise PolicyLoadError(f"policy folder {str(folder)!r} is missing {missing} (needs {list(POLICY_FILES)})")
    try:
        config = PolicyConfig.from_json((folder / CONFIG_FILE).read_text())
    except ConfigError as exc:
        raise PolicyLoadError(f"{folder / CONFIG_FILE}: {exc}") from exc
    try:
        stats = NormalizationStats.from_json((folder / NORMALIZATION_FILE).read_text())
    except (ValueError, json.JSONDecodeError) as exc:
        raise PolicyLoadError(f"{folder / NORMALIZATION_FILE}: {exc}") from exc
    registry = None
    if config.embodiments:
        path = folder / EMBODIMENTS_FILE
        if not path.is_file():
            raise PolicyLoadError(f"{path}: missing (config.json lists embodiments {config.embodiments})")
        try:
            registry = EmbodimentRegistry.from_json(path.read_text())
        except EmbodimentError as exc:
            raise PolicyLoadError(f"{path}: {exc}") from exc
        if registry.names != config.embodiments or registry.max_state_dim > config.state_dim \
                or registry.max_action_dim > config.action_dim:
            raise PolicyLoadError(f"{path}: robots {registry.names} (largest state/action "
                                  f"{registry.max_state_dim}/{registry.max_action_dim}) do not match config.json "
                                  f"({config.embodiments}, {config.state_dim}/{config.action_dim})")
    elif stats.state_dim != config.state_dim or stats.action_dim != config.action_dim:
        raise PolicyLoadError(
            f"{folder / NORMALIZATION_FILE}: stats are for state_dim={stats.state_dim}, "
            f"action_dim={stats.action_dim}; config.json says {config.state_dim}, {config.action_dim}")
    try:
        tensors = load_file(str(folder / WEIGHTS_FILE))
    except (SafetensorError, OSError, ValueError) as exc:
        raise PolicyLoadError(f"{folder / WEIGHTS_FILE}: not a readable safetensors file ({exc})") from exc
    return config, tensors, stats, registry


def describe_keys(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def json_dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True)
