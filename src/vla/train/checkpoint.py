"""Checkpoints: RUN/checkpoints/step_XXXXXX/ with the EMA policy folder and the full training state.

Layout of one checkpoint (written in a temporary folder, renamed into place; no pickle):
  policy/                     EMA weights as a loadable policy folder (vla eval --policy works on it)
  train_state.safetensors     raw weights "model.*", EMA "ema.*", AdamW state "optim.<i>.<name>",
                              torch RNG state "rng.torch"
  trainer_state.json          step, EMA update count, optimizer param groups, train config
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vla.models import Policy

from .optim import EMA

STEP_DIR = re.compile(r"^step_(\d{6,})$")


def checkpoint_dir(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step_{step:06d}"


def latest_checkpoint(run: Path) -> Path | None:
    """The complete checkpoint with the highest step (one whose trainer_state.json exists)."""
    root = run / "checkpoints"
    if not root.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name))
             and (p / "trainer_state.json").is_file()]
    return max(found)[1] if found else None


def save_checkpoint(run: Path, step: int, policy: Policy, ema: EMA, optimizer: torch.optim.Optimizer,
                    config: dict[str, Any], keep: int) -> Path:
    final = checkpoint_dir(run, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        policy.save(tmp / "policy", weights=ema.state_dict_for(policy))
        tensors: dict[str, torch.Tensor] = {}
        for k, v in policy.state_dict().items():
            tensors[f"model.{k}"] = v
        for k, v in ema.shadow.items():
            tensors[f"ema.{k}"] = v
        opt = optimizer.state_dict()
        for idx, st in opt["state"].items():
            for name, value in st.items():
                tensors[f"optim.{idx}.{name}"] = torch.as_tensor(value)
        tensors["rng.torch"] = torch.get_rng_state()
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                  str(tmp / "train_state.safetensors"))
        groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in opt["param_groups"]]
        state = {"step": step, "ema_updates": ema.updates, "param_groups": groups, "config": config}
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(run, keep)
    return final


def _prune(run: Path, keep: int) -> None:
    root = run / "checkpoints"
    steps = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)))
    for _, p in steps[:-keep]:
        shutil.rmtree(p, ignore_errors=True)


def load_checkpoint(folder: Path, policy: Policy, ema: EMA, optimizer: torch.optim.Optimizer) -> int:
    """Restore weights, EMA, optimizer and RNG state in place; returns the step to continue from."""
    state = json.loads((folder / "trainer_state.json").read_text())
    tensors = load_file(str(folder / "train_state.safetensors"))
    policy.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    for k in ema.shadow:
        ema.shadow[k].copy_(tensors[f"ema.{k}"])
    ema.updates = int(state["ema_updates"])
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = v
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in state["param_groups"]]
    optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    torch.set_rng_state(tensors["rng.torch"])
    return int(state["step"])
