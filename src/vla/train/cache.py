"""Training cache: camera frames decoded and resized once into memory-mapped uint8 .npy arrays.

Keyed by a hash of (dataset fingerprint, cameras, image size, cache format); a cache is reused until
one of those changes. Built in a temporary folder and renamed into place, so a crash never leaves a
cache that looks complete. Low-dimensional arrays (state, action, episode bounds, instruction ids)
are cached beside the images.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla.models.image_ops import resize_uint8

from .episode_select import parse_episodes, select_episodes

CACHE_FORMAT = 2  # 2: observation.environment_state cached when the dataset has it
STATE_KEY = "observation.state"
ACTION_KEY = "action"
ENV_STATE_KEY = "observation.environment_state"  # privileged simulator state: a training target only


def camera_key(camera: str) -> str:
    return f"observation.images.{camera}"


def dataset_fingerprint(root: Path) -> str:
    """Hash of every file's relative path, size and mtime under the dataset folder."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_key(root: Path, cameras: list[str], image_size: int, max_episodes: int | None,
              episodes: list[int] | None = None) -> str:
    spec = {"fingerprint": dataset_fingerprint(root), "cameras": list(cameras), "image_size": image_size,
            "max_episodes": max_episodes, "format": CACHE_FORMAT}
    if episodes is not None:  # absent otherwise, so caches of whole datasets keep their keys
        spec["episodes"] = list(episodes)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


@dataclass
class TrainingCache:
    """Arrays over all N frames: images[cam] uint8 [N, S, S, 3] (memory-mapped), state [N, D],
    action [N, A], episode_end [N] (exclusive global end of the frame's episode), instruction_id [N]
    indexing ``instructions``; env_state [N, E] (``observation.environment_state``) or None when the
    dataset has none."""

    root: Path
    images: dict[str, np.ndarray]
    state: np.ndarray
    action: np.ndarray
    episode_end: np.ndarray
    instruction_id: np.ndarray
    instructions: list[str]
    meta: dict
    env_state: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.state.shape[0])

    @classmethod
    def load(cls, root: Path) -> TrainingCache:
        meta = json.loads((root / "meta.json").read_text())
        images = {cam: np.load(root / f"images_{cam}.npy", mmap_mode="r") for cam in meta["cameras"]}
        arr = {name: np.load(root / f"{name}.npy", allow_pickle=False)
               for name in ("state", "action", "episode_end", "instruction_id")}
        env_state = (np.load(root / "env_state.npy", allow_pickle=False) if meta.get("env_state") else None)
        return cls(root, images, arr["state"], arr["action"], arr["episode_end"], arr["instruction_id"],
                   list(meta["instructions"]), meta, env_state)


def _instructions_of(ds, index: int, cols: dict[str, np.ndarray]) -> list[str]:
    length = ds.episode(index).length
    if "task_index" in cols and len(ds.tasks):
        return [ds.tasks[int(t)] for t in cols["task_index"]]
    tasks = ds.episode(index).tasks
    if not tasks:
        raise ValueError(f"episode {index} has no task/instruction")
    return [tasks[0]] * length


def build_cache(dataset_path: str | Path, cameras: list[str], image_size: int, cache_dir: str | Path,
                max_episodes: int | None = None, progress: Callable[[int, int], None] | None = None,
                episodes: Any = None) -> TrainingCache:
    """Return the cache for these settings, building it first if needed. ``episodes`` selects episodes by
    index (``vla.train.episode_select``), ``max_episodes`` keeps the first N of them."""
    from vla.data import Dataset
    from vla.data.errors import DatasetError

    root = Path(dataset_path)
    ds = Dataset.open(root)
    missing = [c for c in cameras if camera_key(c) not in ds.camera_keys]
    if missing:
        raise DatasetError(root, f"no camera(s) {missing} (policy.cameras); its cameras: "
                                 f"{[k.removeprefix('observation.images.') for k in ds.camera_keys]}")
    for key in (STATE_KEY, ACTION_KEY):
        if key not in ds.features:
            raise ValueError(f"dataset {str(root)!r} has no {key!r} feature (has {sorted(ds.features)})")
    wanted = parse_episodes(episodes)
    key = cache_key(root, cameras, image_size, max_episodes, wanted)
    final = Path(cache_dir) / key
    if (final / "meta.json").is_file():
        return TrainingCache.load(final)
    episodes = select_episodes([e.index for e in ds.episodes], wanted, max_episodes, str(root))
    lengths = [ds.episode(e).length for e in episodes]
    total = int(sum(lengths))
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache_dir))
    try:
        mmaps = {cam: np.lib.format.open_memmap(tmp / f"images_{cam}.npy", mode="w+", dtype=np.uint8,
                                                shape=(total, image_size, image_size, 3)) for cam in cameras}
        states, actions, ends, instr_ids, env_states = [], [], [], [], []
        has_env_state = ENV_STATE_KEY in ds.features
        instructions: dict[str, int] = {}
        start = 0
        for n, (e, length) in enumerate(zip(episodes, lengths, strict=True)):
            cols = ds.episode_columns(e)
            states.append(np.asarray(cols[STATE_KEY], dtype=np.float32).reshape(length, -1))
            actions.append(np.asarray(cols[ACTION_KEY], dtype=np.float32).reshape(length, -1))
            if has_env_state:
                env_states.append(np.asarray(cols[ENV_STATE_KEY], dtype=np.float32).reshape(length, -1))
            ends.append(np.full(length, start + length, dtype=np.int64))
            instr_ids.append(np.array([instructions.setdefault(t, len(instructions))
                                       for t in _instructions_of(ds, e, cols)], dtype=np.int32))
            for cam in cameras:
                frames = ds.episode_images(e, camera_key(cam))
                if frames.shape[0] != length:
                    raise ValueError(f"episode {e}, camera {cam}: {frames.shape[0]} frames, expected {length}")
                mmaps[cam][start:start + length] = resize_uint8(torch.from_numpy(frames), image_size).numpy()
            start += length
            if progress:
                progress(n + 1, len(episodes))
        for arr in mmaps.values():
            arr.flush()
        del mmaps
        for name, parts in (("state", states), ("action", actions), ("episode_end", ends),
                            ("instruction_id", instr_ids)):
            np.save(tmp / f"{name}.npy", np.concatenate(parts), allow_pickle=False)
        if has_env_state:
            np.save(tmp / "env_state.npy", np.concatenate(env_states), allow_pickle=False)
        meta = {"format": CACHE_FORMAT, "dataset": str(root.resolve()), "cameras": list(cameras),
                "image_size": image_size, "num_frames": total, "num_episodes": len(episodes),
                "instructions": sorted(instructions, key=instructions.__getitem__), "fps": ds.fps,
                "env_state": has_env_state}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished the same cache first
            if not (final / "meta.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return TrainingCache.load(final)


class ConcatFrames:
    """Several frame arrays [N_i, ...] read as one [sum N_i, ...] through sorted integer indices (no copy)."""

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = parts
        self.offsets = np.cumsum([0, *(len(p) for p in parts)])
        self.shape = (int(self.offsets[-1]), *parts[0].shape[1:])
        self.dtype = parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, np.int64)
        out = np.empty((len(idx), *self.shape[1:]), self.dtype)
        part = np.searchsorted(self.offsets, idx, side="right") - 1
        for p in np.unique(part):
            sel = part == p
            out[sel] = self.parts[p][idx[sel] - self.offsets[p]]
        return out


def concat_caches(caches: list[TrainingCache]) -> TrainingCache:
    """One cache over the frames of several (episode ends and instruction ids shifted); images stay mapped."""
    if len(caches) == 1:
        return caches[0]
    first = caches[0]
    for c in caches[1:]:
        if c.state.shape[1] != first.state.shape[1] or c.action.shape[1] != first.action.shape[1]:
            raise ValueError(f"cannot train on {first.meta.get('dataset')} and {c.meta.get('dataset')} together: "
                             f"state/action sizes {first.state.shape[1]}/{first.action.shape[1]} and "
                             f"{c.state.shape[1]}/{c.action.shape[1]} differ")
    instructions: dict[str, int] = {}
    ids, ends, offset = [], [], 0
    for c in caches:
        remap = np.array([instructions.setdefault(t, len(instructions)) for t in c.instructions], np.int32)
        ids.append(remap[c.instruction_id] if len(remap) else c.instruction_id)
        ends.append(c.episode_end + offset)
        offset += c.num_frames
    images = {cam: ConcatFrames([c.images[cam] for c in caches]) for cam in first.images}
    meta = {**first.meta, "parts": [c.meta for c in caches], "num_frames": offset,
            "num_episodes": sum(int(c.meta.get("num_episodes", 0)) for c in caches)}
    env_state = (np.concatenate([c.env_state for c in caches])  # type: ignore[misc]
                 if all(c.env_state is not None for c in caches) else None)
    return TrainingCache(first.root, images, np.concatenate([c.state for c in caches]),  # type: ignore[arg-type]
                         np.concatenate([c.action for c in caches]), np.concatenate(ends), np.concatenate(ids),
                         sorted(instructions, key=instructions.__getitem__), meta, env_state)
