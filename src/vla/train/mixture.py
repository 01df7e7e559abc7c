"""Training on a weighted mixture of datasets, possibly from several robots (Octo-style sampling).

``vla train --dataset A --dataset B:0.5`` gives a mixture: every sample of a batch first draws its dataset
with probability proportional to ``weight`` (times the dataset's number of frames when ``mixture_balance``,
the default, so that equal weights pool the frames), then a frame uniformly inside it. Datasets of the same
robot (its embodiment name from info.json, else its robot_type) share one entry of the policy's embodiment
registry, with statistics over their frames together; with two or more robots, states and actions are padded
to the largest and the batch names each sample's robot. The batch of step ``s`` depends only on
(seed, rank, s), as for `vla.train.sampler.BatchSampler`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla.data import Dataset
from vla.models.config import ConfigError
from vla.models.embodiments import Embodiment, EmbodimentRegistry
from vla.models.normalize import NormalizationStats

from .cache import ACTION_KEY, STATE_KEY, TrainingCache
from .sampler import action_chunks, episode_starts


@dataclass(frozen=True)
class MixtureEntry:
    dataset: str
    weight: float = 1.0


def parse_dataset_arg(text: str) -> MixtureEntry:
    """``PATH`` or ``PATH:WEIGHT`` (a weight > 0) -> MixtureEntry."""
    path, sep, tail = str(text).rpartition(":")
    if sep and path:
        try:
            weight = float(tail)
        except ValueError:
            return MixtureEntry(str(text))  # a colon inside the path
        if not weight > 0 or not np.isfinite(weight):
            raise ConfigError(f"--dataset {text!r}: the weight after ':' must be a number > 0")
        return MixtureEntry(path, weight)
    return MixtureEntry(str(text))


def parse_mixture(value: Any) -> list[MixtureEntry]:
    """TrainConfig.mixture ([{"dataset": path, "weight": w}, ...] or ["path:w", ...]) -> entries."""
    if not isinstance(value, list):
        raise ConfigError(f"mixture: expected a list of {{dataset, weight}} entries, got {value!r}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            out.append(parse_dataset_arg(item))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("dataset"), str) or not item["dataset"]:
            raise ConfigError(f"mixture[{i}]: expected {{'dataset': path, 'weight': number}}, got {item!r}")
        unknown = sorted(set(item) - {"dataset", "weight"})
        if unknown:
            raise ConfigError(f"mixture[{i}]: unknown key(s) {unknown}; known: ['dataset', 'weight']")
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise ConfigError(f"mixture[{i}].weight: expected a number > 0, got {weight!r}")
        out.append(MixtureEntry(item["dataset"], float(weight)))
    return out


def embodiment_name(ds: Dataset, path: str | Path) -> str:
    """The robot a dataset is from: its embodiment spec's name, else robot_type, else its folder name."""
    spec = ds.embodiment or {}
    return str(spec.get("name") or ds.robot_type or Path(path).name)


def _names(ds: Dataset, key: str, spec_key: str) -> list[str]:
    spec = ds.embodiment or {}
    if spec.get(spec_key):
        return [str(n) for n in spec[spec_key]]
    names = ds.features.get(key, {}).get("names")
    if isinstance(names, dict):  # LeRobot v2 style {"motors": [...]}
        names = next(iter(names.values()), None)
    return [str(n) for n in names] if isinstance(names, list) else []


def dataset_cameras(path: str | Path) -> list[str]:
    """Camera names of a dataset (``observation.images.<name>``)."""
    return [k.removeprefix("observation.images.") for k in Dataset.open(path).camera_keys]


def build_registry(entries: list[MixtureEntry], caches: list[TrainingCache], cameras: list[str],
                   stats: list[NormalizationStats]) -> tuple[list[str], EmbodimentRegistry]:
    """Embodiment name of each dataset and the registry of the mixture's robots (first appearance order);
    ``stats`` holds each dataset's own normalization (`policy_normalization`)."""
    groups: dict[str, list[int]] = {}
    names = []
    datasets = [Dataset.open(entry.dataset) for entry in entries]
    for i, (entry, ds) in enumerate(zip(entries, datasets, strict=True)):
        name = embodiment_name(ds, entry.dataset)
        names.append(name)
        groups.setdefault(name, []).append(i)
    embodiments = []
    for name, members in groups.items():
        dims = {(caches[i].state.shape[1], caches[i].action.shape[1]) for i in members}
        if len(dims) > 1:
            raise ConfigError(f"datasets {[entries[i].dataset for i in members]} are all robot {name!r} but their "
                              f"state/action sizes differ: {sorted(dims)}")
        first = datasets[members[0]]
        if len(members) == 1:
            robot_stats = stats[members[0]]
        else:
            if any(stats[i].dataset is not None for i in members):
                raise ConfigError(f"robot {name!r}: several standardized datasets in one mixture entry are not "
                                  "supported (their transforms would have to agree); standardize them together")
            robot_stats = NormalizationStats.from_arrays(np.concatenate([caches[i].state for i in members]),
                                                         np.concatenate([caches[i].action for i in members]))
        have = {cam for i in members for cam in caches[i].images}
        spec = first.embodiment or {}
        embodiments.append(Embodiment(
            name, robot_stats, _names(first, STATE_KEY, "state_names"), _names(first, ACTION_KEY, "action_names"),
            float(spec.get("control_rate_hz") or first.fps or 0.0), [c for c in cameras if c in have]))
    return names, EmbodimentRegistry(embodiments)


class MixtureSampler:
    """Deterministic random batches from several caches, by weight; padded for several robots."""

    def __init__(self, caches: list[TrainingCache], embodiments: list[str], weights: list[float], balance: bool,
                 batch_size: int, chunk: int, cameras: list[str], image_size: int, seed: int, rank: int = 0,
                 multi_robot: bool = True, state_dim: int | None = None, action_dim: int | None = None,
                 context_cameras: list[str] | None = None) -> None:
        if not len(caches) == len(embodiments) == len(weights):
            raise ValueError("MixtureSampler: one embodiment name and weight per cache")
        self.caches, self.embodiments = caches, embodiments
        w = np.asarray(weights, dtype=np.float64) * (np.array([c.num_frames for c in caches]) if balance else 1.0)
        self.probs = w / w.sum()
        self.batch_size, self.chunk, self.cameras, self.image_size = batch_size, chunk, list(cameras), image_size
        self.seed, self.rank, self.multi_robot = seed, rank, multi_robot
        self.context_cameras = list(context_cameras or [])
        self._starts = [episode_starts(c) for c in caches] if self.context_cameras else None
        # padded sizes: the policy's (it may know larger robots than these datasets hold), else the largest here
        self.state_dim = state_dim or max(c.state.shape[1] for c in caches)
        self.action_dim = action_dim or max(c.action.shape[1] for c in caches)
        self.env_state = all(c.env_state is not None for c in caches) and len(
            {c.env_state.shape[1] for c in caches if c.env_state is not None}) == 1

    def draw(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(dataset index [B], frame index within it [B]) of step ``step``'s samples, grouped by dataset."""
        rng = np.random.default_rng([self.seed, self.rank, step, 11])
        which = np.sort(rng.choice(len(self.caches), size=self.batch_size, p=self.probs))
        frames = np.empty(self.batch_size, dtype=np.int64)
        for d in np.unique(which):
            sel = which == d
            frames[sel] = np.sort(rng.integers(0, self.caches[d].num_frames, int(sel.sum())))
        return which, frames

    def batch(self, step: int) -> dict[str, Any]:
        which, frames = self.draw(step)
        b, h, s = self.batch_size, self.chunk, self.image_size
        images = {cam: np.zeros((b, s, s, 3), np.uint8) for cam in self.cameras}
        context = {cam: np.zeros((b, s, s, 3), np.uint8) for cam in self.context_cameras}
        state = np.zeros((b, self.state_dim), np.float32)
        action = np.zeros((b, h, self.action_dim), np.float32)
        mask = np.zeros((b, h), bool)
        env = None
        instructions: list[str] = [""] * b
        for d in np.unique(which):
            rows = np.flatnonzero(which == d)
            c, idx = self.caches[d], frames[rows]
            action[rows, :, : c.action.shape[1]], mask[rows] = action_chunks(c, idx, h)
            state[rows, : c.state.shape[1]] = c.state[idx]
            for cam in self.cameras:
                if cam in c.images:  # a camera this robot lacks stays blank (the policy masks it)
                    images[cam][rows] = c.images[cam][idx]
            if self._starts is not None:
                first = self._starts[d][idx]
                for cam in self.context_cameras:
                    if cam in c.images:
                        context[cam][rows] = c.images[cam][first]
            for r, i in zip(rows, c.instruction_id[idx], strict=True):
                instructions[r] = c.instructions[i]
            if self.env_state:
                assert c.env_state is not None
                if env is None:
                    env = np.zeros((b, c.env_state.shape[1]), np.float32)
                env[rows] = c.env_state[idx]
        batch: dict[str, Any] = {
            "images": {cam: torch.from_numpy(v) for cam, v in images.items()},
            "state": torch.from_numpy(state), "instruction": instructions,
            "action": torch.from_numpy(action), "action_mask": torch.from_numpy(mask),
        }
        if context:
            batch["context_images"] = {cam: torch.from_numpy(v) for cam, v in context.items()}
        if self.multi_robot:
            batch["embodiment"] = [self.embodiments[d] for d in which]
        if env is not None:
            batch["environment_state"] = torch.from_numpy(env)
        return batch


def cache_cameras(path: str | Path, cameras: list[str]) -> list[str]:
    """The policy cameras a dataset has (its cache holds only those); ConfigError if it has none."""
    have = set(dataset_cameras(path))
    out = [c for c in cameras if c in have]
    if not out:
        raise ConfigError(f"dataset {path}: none of the policy cameras {cameras} (it has {sorted(have)}; "
                          "set policy.cameras)")
    return out
