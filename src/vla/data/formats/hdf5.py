"""HDF5 robot demonstrations: robomimic, raw robosuite, and ALOHA/ACT.

Layouts (detected per file):

- **robomimic**: ``data/demo_N/{obs/*, actions, rewards, dones[, states]}``, ``data`` attr ``env_args``
  (JSON). Demos are sorted numerically (demo_2 before demo_10); ``filter_key`` in the mapping keeps the
  demos listed in ``mask/<filter_key>``. Image obs (uint8 [T, H, W, 3]) -> ``observation.images.<key>``
  (a trailing ``_image`` dropped); low-dim obs are concatenated into ``observation.state`` in sorted key
  order (or the mapping's ``state_keys``), dims named ``<key>_<i>``; ``rewards`` -> ``next.reward``,
  ``dones`` -> ``next.done``, ``states`` -> ``observation.sim_state``. Rate: env_kwargs.control_freq, else 20 Hz.
- **raw robosuite** (the input of robomimic's converter): ``data/demo_N/{actions, states, ...}`` with no
  ``obs``; ``states`` -> ``observation.state``; any other per-step dataset of the demo's length ->
  ``observation.<name>``. Rate: env_info control_freq, else robosuite's default 20 Hz.
- **ALOHA/ACT**: one file per episode, ``/observations/qpos`` -> ``observation.state``, ``qvel`` / ``effort``
  -> ``observation.velocity`` / ``observation.effort``, ``/action`` -> ``action``,
  ``/observations/images/<cam>`` raw uint8 [T, H, W, 3] or JPEG bytes padded to [T, L] with
  ``/compress_len`` [num_cams, T] (cameras in the file's key order) -> ``observation.images.<cam>``;
  50 Hz. A folder of episode files is read in natural order.

The task comes from the mapping's ``task``, else the file's ``task``/``instruction``/``language``
attribute, else the environment name (robomimic/robosuite) or the folder name (ALOHA).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.formats.base import Reader, natural_key, source_dict
from vla.data.formats.episode import ConversionError, SourceEpisode, SourceInfo, aligned_episode

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ALOHA_FPS = 50.0
ROBOSUITE_FPS = 20.0


def is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_MAGIC
    except OSError:
        return False


def _open(path: Path) -> Any:
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise ConversionError(f"{path}: cannot open as HDF5 ({e}); the file may be truncated or corrupted") from e


def _need(group: Any, key: str, path: Path, expected: str) -> Any:
    if key not in group:
        have = sorted(group.keys()) if hasattr(group, "keys") else []
        raise ConversionError(f"{path}: missing key '{group.name.rstrip('/')}/{key}' (expected {expected}; "
                              f"found {have})")
    return group[key]


def _read(ds: Any, path: Path) -> np.ndarray:
    """A whole dataset, after checking its declared size against what the file stores for it."""
    from vla.data.limits import LIMITS, check_bytes

    if not hasattr(ds, "shape") or ds.shape is None:
        raise ConversionError(f"{path}: '{getattr(ds, 'name', ds)}' is not an array dataset")
    declared = float(np.prod(ds.shape, dtype=np.float64)) * ds.dtype.itemsize
    try:
        stored = ds.id.get_storage_size()
    except Exception:  # noqa: BLE001 - h5py raises for some virtual/external layouts; count the file then
        stored = path.stat().st_size
    check_bytes(declared, min(int(stored), path.stat().st_size), path,
                f"'{ds.name}' (shape {list(ds.shape)}, {ds.dtype})", LIMITS)
    try:
        return ds[()]
    except OSError as e:
        raise ConversionError(f"{path}: cannot read '{ds.name}' ({e}); the file may be truncated") from e


def layout_of(f: Any, path: Path) -> str:
    if "data" in f and isinstance(f["data"], _group_type()):
        demos = [k for k in f["data"] if k.startswith("demo")]
        if not demos:
            raise ConversionError(f"{path}: '/data' holds no demo_N groups (expected robomimic/robosuite demos)")
        return "robomimic" if "obs" in f["data"][demos[0]] else "robosuite"
    if "observations" in f and "action" in f:
        return "aloha"
    raise ConversionError(f"{path}: unknown HDF5 layout: top-level keys {sorted(f.keys())} (expected 'data' "
                          "with demo_N groups (robomimic/robosuite) or 'observations' + 'action' (ALOHA))")


def _group_type() -> type:
    import h5py

    return h5py.Group


def _attr_text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _json_attr(attrs: Any, key: str) -> dict[str, Any]:
    if key not in attrs:
        return {}
    try:
        d = json.loads(_attr_text(attrs[key]))
        return d if isinstance(d, dict) else {}
    except json.JSONDecodeError:
        return {}


class Hdf5Reader(Reader):
    """One HDF5 file or a folder of them; work items are (file, demo) pairs."""

    def __init__(self, path: Path, mapping: dict[str, Any] | None = None) -> None:
        self.root = Path(path)
        self.mapping = mapping or {}
        files = [self.root] if self.root.is_file() else sorted(
            (p for p in self.root.iterdir() if p.is_file() and is_hdf5(p)), key=lambda p: natural_key(p.name))
        if not files:
            raise ConversionError(f"{self.root}: no HDF5 files found")
        self.files = files
        with _open(files[0]) as f:
            self.layout = layout_of(f, files[0])
            fps, robot, env = self._meta(f)
        from vla.data.limits import check_number

        fps = check_number(self.mapping.get("fps") or fps, files[0], "fps (mapping or control_freq)", positive=True,
                           at_most=100_000)
        self.info = SourceInfo("hdf5", fps, self.mapping.get("robot_type") or robot,
                               env or self.root.stem, self.mapping.get("license"))
        self.info.extra["layout"] = self.layout

    def _meta(self, f: Any) -> tuple[float, str | None, str | None]:
        if self.layout == "aloha":
            return ALOHA_FPS, "aloha", None
        attrs = f["data"].attrs
        env_args = _json_attr(attrs, "env_args") or _json_attr(attrs, "env_info")
        kwargs = env_args.get("env_kwargs", env_args)
        if not isinstance(kwargs, dict):
            kwargs = {}
        fps = kwargs.get("control_freq") or ROBOSUITE_FPS
        robots = kwargs.get("robots")
        robot = ",".join(robots) if isinstance(robots, list) else robots
        env = env_args.get("env_name") or (_attr_text(attrs["env"]) if "env" in attrs else None)
        return fps, robot, env

    def tasks(self) -> Iterator[tuple[str, str | None]]:
        for path in self.files:
            if self.layout == "aloha":
                yield str(path), None
                continue
            with _open(path) as f:
                if "data" not in f:
                    raise ConversionError(f"{path}: missing key '/data' (expected the demos group)")
                demos = sorted((k for k in f["data"] if k.startswith("demo")), key=natural_key)
                fk = self.mapping.get("filter_key")
                if fk:
                    mask = _need(f, "mask", path, "filter keys for 'filter_key'")
                    keep = {_attr_text(x) for x in _read(_need(mask, fk, path, "a list of demo names"), path)}
                    demos = [d for d in demos if d in keep]
            for d in demos:
                yield str(path), d

    def describe(self, task: Any) -> str:
        return f"{task[0]}" + (f" /data/{task[1]}" if task[1] else "")

    def load(self, task: tuple[str, str | None]) -> list[SourceEpisode]:
        path = Path(task[0])
        with _open(path) as f:
            if self.layout == "aloha":
                return [self._aloha(f, path)]
            demo = _need(f["data"], task[1], path, "a demo group")
            if self.layout == "robomimic":
                return [self._robomimic(f, demo, path)]
            return [self._robosuite(f, demo, path)]

    def _task(self, f: Any, fallback: str) -> list[str]:
        if self.mapping.get("task"):
            return [str(self.mapping["task"])]
        for key in ("task", "instruction", "language", "language_instruction"):
            for attrs in (f.attrs, f["data"].attrs if "data" in f else {}):
                if key in attrs:
                    return [_attr_text(attrs[key])]
        return [fallback]

    def _source(self, path: Path, **extra: Any) -> dict[str, Any]:
        return source_dict("hdf5", path, layout=self.layout, dataset=self.info.dataset_name, **extra)

    def _robomimic(self, f: Any, demo: Any, path: Path) -> SourceEpisode:
        obs = _need(demo, "obs", path, "robomimic observations")
        actions = _read(_need(demo, "actions", path, "actions [T, A]"), path)
        n = len(actions)
        arrays: dict[str, Any] = {"action": actions}
        names: dict[str, list[str]] = {}
        low = []
        for key in self.mapping.get("state_keys") or sorted(obs.keys()):
            v = _read(_need(obs, key, path, "an observation array"), path)
            if len(v) != n:
                raise ConversionError(f"{path}: '{obs.name}/{key}' has {len(v)} steps, expected {n} (as actions)")
            if v.dtype == np.uint8 and v.ndim == 4 and v.shape[-1] == 3:
                cam = key[: -len("_image")] if key.endswith("_image") else key
                arrays[f"observation.images.{cam}"] = v
            elif v.ndim <= 2:
                low.append((key, v.reshape(n, -1)))
        if low:
            arrays["observation.state"] = np.concatenate([v for _, v in low], axis=1)
            names["observation.state"] = [f"{k}_{i}" for k, v in low for i in range(v.shape[1])]
        for key, out in (("rewards", "next.reward"), ("dones", "next.done"), ("states", "observation.sim_state")):
            if key in demo:
                arrays[out] = _read(demo[key], path)
        if "next.done" in arrays:
            arrays["next.done"] = arrays["next.done"].astype(bool)
        tasks = self._task(f, self.info.dataset_name or "robomimic task")
        env_args = _json_attr(f["data"].attrs, "env_args") or None
        src = self._source(path, demo=demo.name.split("/")[-1], env_args=env_args)
        return aligned_episode(arrays, self.info.fps, tasks, {"next.done": "hold"}, names, src)

    def _robosuite(self, f: Any, demo: Any, path: Path) -> SourceEpisode:
        actions = _read(_need(demo, "actions", path, "actions [T, A]"), path)
        states = _read(_need(demo, "states", path, "states [T, S] (MuJoCo sim states)"), path)
        n = len(actions)
        if len(states) != n:
            raise ConversionError(f"{path}: '{demo.name}/states' has {len(states)} steps, expected {n} (as actions)")
        arrays: dict[str, Any] = {"observation.state": states, "action": actions}
        for key in sorted(demo.keys()):
            if key in ("actions", "states") or not hasattr(demo[key], "shape"):
                continue
            v = _read(demo[key], path)
            if len(v) == n:
                arrays[f"observation.{key}"] = v
        tasks = self._task(f, self.info.dataset_name or "robosuite task")
        src = self._source(path, demo=demo.name.split("/")[-1], model_file=_attr_text(demo.attrs["model_file"])
                           if "model_file" in demo.attrs else None)
        return aligned_episode(arrays, self.info.fps, tasks, None, None, src)

    def _aloha(self, f: Any, path: Path) -> SourceEpisode:
        obs = _need(f, "observations", path, "the observations group")
        qpos = _read(_need(obs, "qpos", path, "joint positions [T, D]"), path)
        action = _read(_need(f, "action", path, "actions [T, A]"), path)
        n = len(qpos)
        if len(action) != n:
            raise ConversionError(f"{path}: '/action' has {len(action)} steps, expected {n} (as qpos)")
        arrays: dict[str, Any] = {"observation.state": qpos, "action": action}
        for key, out in (("qvel", "observation.velocity"), ("effort", "observation.effort")):
            if key in obs:
                arrays[out] = _read(obs[key], path)
        encoded: list[str] = []
        if "images" in obs:
            cams = list(obs["images"].keys())
            clen = _read(f["compress_len"], path) if "compress_len" in f else None
            for ci, cam in enumerate(cams):
                ds = obs["images"][cam]
                key = f"observation.images.{cam}"
                if ds.ndim == 4:
                    arrays[key] = _read(ds, path)
                    continue
                if clen is None:
                    raise ConversionError(f"{path}: '{ds.name}' is {ds.ndim}-D (compressed images) but "
                                          "'/compress_len' is missing (expected [num_cams, T] byte lengths)")
                if clen.shape[0] != len(cams) or clen.shape[1] < n:
                    raise ConversionError(f"{path}: '/compress_len' has shape {list(clen.shape)}, expected "
                                          f"[{len(cams)}, {n}]")
                raw = _read(ds, path)
                arrays[key] = [raw[t, : int(clen[ci, t])].tobytes() for t in range(n)]
                encoded.append(key)
        tasks = self._task(f, path.parent.name or "aloha task")
        sim = bool(f.attrs.get("sim", False))
        src = self._source(path, sim=sim)
        return aligned_episode(arrays, self.info.fps, tasks, None, None, src, encoded=tuple(encoded))
