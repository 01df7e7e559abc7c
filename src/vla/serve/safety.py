"""Safety layer: per-embodiment limits (YAML/JSON) and the SafetyFilter applied to every action.

Numpy + pyyaml only (no simulator, no torch): usable by the server and on the robot side.
See docs/safety.md for the file format and the guarantees.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from vla.errors import VlaError
from vla.serve.safety_geometry import (
    KeepOutBox,
    KeepOutPlane,
    KeepOutSphere,
    Workspace,
    first_entry,
    max_travel_in_box,
)

__all__ = [
    "KINDS",
    "DimSpec",
    "SafetyConfig",
    "SafetyConfigError",
    "SafetyFilter",
    "SafetyReport",
    "load_safety_config",
    "summarize_reports",
]

KINDS = ("joint_position", "joint_velocity", "ee_delta", "gripper")
AXES = ("x", "y", "z")
_TOP_KEYS = ("name", "description", "control_rate_hz", "action_dim", "state_dim", "epsilon", "dims", "workspace",
             "keep_out")
_COMMON_DIM_KEYS = ("name", "kind", "state_index")
_KIND_KEYS = {
    "joint_position": ("position", "soft_margin", "velocity", "acceleration", "jerk"),
    "joint_velocity": ("position", "soft_margin", "velocity", "acceleration", "jerk"),
    "ee_delta": ("axis", "scale", "range", "velocity", "acceleration", "jerk"),
    "gripper": ("range", "hold"),
}
_SHAPE_KEYS = {"box": ("name", "type", "low", "high"), "sphere": ("name", "type", "center", "radius"),
               "plane": ("name", "type", "point", "normal")}


class SafetyConfigError(VlaError, ValueError):
    """A safety config that does not validate; the message names the file (or source) and the field."""


@dataclass(frozen=True)
class DimSpec:
    """Limits of one action dimension (units: rad or m for positions, per second for rates).

    - ``joint_position``: the action is a target position; ``position`` [lo, hi] shrunk by
      ``soft_margin`` is the hard range; velocity/acceleration/jerk of the commanded positions.
    - ``joint_velocity``: the action is a velocity; ``velocity`` bounds it, ``position`` (with the
      measured position at ``state_index``) bounds where one step can take the joint.
    - ``ee_delta``: the action times ``scale`` is a displacement (m) along ``axis`` per step;
      ``range`` bounds the action itself, ``velocity`` (m/s) the displacement times the rate.
    - ``gripper``: clipped to ``range``; held at its last command (``hold`` before any command).
    """

    name: str
    kind: str
    state_index: int | None = None
    axis: str | None = None
    scale: float = 1.0
    range: tuple[float, float] | None = None
    position: tuple[float, float] | None = None
    soft_margin: float = 0.0
    velocity: float | None = None
    acceleration: float | None = None
    jerk: float | None = None
    hold: float | None = None

    def position_bounds(self) -> tuple[float, float] | None:
        if self.position is None:
            return None
        return self.position[0] + self.soft_margin, self.position[1] - self.soft_margin

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.state_index is not None:
            out["state_index"] = self.state_index
        for key in _KIND_KEYS[self.kind]:
            value = getattr(self, key)
            if key == "soft_margin" and self.position is None:
                continue
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class SafetyConfig:
    """Limits of one embodiment, validated on construction through :meth:`from_dict`."""

    name: str
    control_rate_hz: float
    dims: tuple[DimSpec, ...]
    state_dim: int | None = None
    workspace: Workspace | None = None
    keep_out: tuple[KeepOutBox | KeepOutSphere | KeepOutPlane, ...] = ()
    epsilon: float = 1e-3
    description: str = ""
    _ee: tuple[int, int, int] | None = field(default=None, repr=False, compare=False)

    @property
    def action_dim(self) -> int:
        return len(self.dims)

    @property
    def ee_dims(self) -> tuple[int, int, int] | None:
        """Action indices of the x, y, z ``ee_delta`` dims (when all three exist)."""
        return self._ee

    # ------------------------------------------------------------------ I/O
    @classmethod
    def from_dict(cls, d: dict, source: str = "<dict>") -> SafetyConfig:
        return _parse(d, source)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out.update({"control_rate_hz": self.control_rate_hz, "action_dim": self.action_dim,
                    "state_dim": self.state_dim, "epsilon": self.epsilon,
                    "dims": [dim.to_dict() for dim in self.dims]})
        if self.workspace is not None:
            out["workspace"] = {"low": list(self.workspace.low), "high": list(self.workspace.high)}
        if self.keep_out:
            out["keep_out"] = [shape.to_dict() for shape in self.keep_out]
        return out

    @classmethod
    def for_metaworld_sawyer(cls) -> SafetyConfig:
        """The shipped config of the MetaWorld Sawyer (``safety_configs/metaworld_sawyer.yaml``)."""
        res = resources.files("vla.serve").joinpath("safety_configs/metaworld_sawyer.yaml")
        return _parse(_load_text(res.read_text(encoding="utf-8"), ".yaml", "metaworld_sawyer.yaml"),
                      "metaworld_sawyer.yaml")


def load_safety_config(path: str | Path) -> SafetyConfig:
    """Read a safety config from a ``.yaml``/``.yml`` or ``.json`` file (yaml.safe_load only)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise SafetyConfigError(f"{p}: unknown config suffix {suffix!r}; use .yaml, .yml or .json")
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SafetyConfigError(f"{p}: cannot read: {e}") from e
    return _parse(_load_text(text, suffix, str(p)), str(p))


def _load_text(text: str, suffix: str, source: str) -> Any:
    try:
        if suffix == ".json":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as e:  # yaml.YAMLError, json.JSONDecodeError
        raise SafetyConfigError(f"{source}: not valid {suffix.lstrip('.').upper()}: {e}") from e


# ---------------------------------------------------------------------- validation
class _Ctx:
    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, msg: str) -> SafetyConfigError:
        return SafetyConfigError(f"{self.source}: {where}: {msg}")

    def keys(self, d: Any, where: str, known: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(d, dict):
            raise self.fail(where, f"must be a mapping, got {type(d).__name__}")
        unknown = [k for k in d if k not in known]
        if unknown:
            raise self.fail(where, f"unknown key(s) {', '.join(map(str, unknown))}; known keys: {', '.join(known)}")
        missing = [k for k in required if k not in d]
        if missing:
            raise self.fail(where, f"missing required key(s) {', '.join(missing)}")
        return d

    def number(self, v: Any, where: str, *, positive: bool = False, nonneg: bool = False) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.fail(where, f"must be a number, got {v!r}")
        x = float(v)
        if not math.isfinite(x):
            raise self.fail(where, f"must be finite, got {v!r}")
        if positive and x <= 0:
            raise self.fail(where, f"must be > 0, got {v!r}")
        if nonneg and x < 0:
            raise self.fail(where, f"must be >= 0, got {v!r}")
        return x

    def integer(self, v: Any, where: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(where, f"must be an integer, got {v!r}")
        return int(v)

    def vector(self, v: Any, where: str, n: int) -> tuple[float, ...]:
        if not isinstance(v, list | tuple) or len(v) != n:
            raise self.fail(where, f"must be a list of {n} numbers, got {v!r}")
        return tuple(self.number(x, f"{where}[{i}]") for i, x in enumerate(v))

    def interval(self, v: Any, where: str) -> tuple[float, float]:
        lo, hi = self.vector(v, where, 2)
        if not lo < hi:
            raise self.fail(where, f"must be ordered [low, high] with low < high, got {list(v)}")
        return lo, hi


def _parse(d: Any, source: str) -> SafetyConfig:
    c = _Ctx(source)
    d = c.keys(d, "top level", _TOP_KEYS, ("name", "control_rate_hz", "dims"))
    name = d["name"]
    if not isinstance(name, str) or not name:
        raise c.fail("name", f"must be a non-empty string, got {name!r}")
    description = d.get("description", "") or ""
    if not isinstance(description, str):
        raise c.fail("description", "must be a string")
    rate = c.number(d["control_rate_hz"], "control_rate_hz", positive=True)
    epsilon = c.number(d.get("epsilon", 1e-3), "epsilon", positive=True)
    state_dim = d.get("state_dim")
    if state_dim is not None:
        state_dim = c.integer(state_dim, "state_dim")
        if state_dim < 1:
            raise c.fail("state_dim", f"must be >= 1 or null, got {state_dim}")
    raw_dims = d["dims"]
    if not isinstance(raw_dims, list) or not raw_dims:
        raise c.fail("dims", "must be a non-empty list")
    dims = tuple(_parse_dim(c, raw, f"dims[{i}]", state_dim) for i, raw in enumerate(raw_dims))
    if "action_dim" in d and c.integer(d["action_dim"], "action_dim") != len(dims):
        raise c.fail("action_dim", f"is {d['action_dim']} but dims lists {len(dims)} dimensions")
    names = [dim.name for dim in dims]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise c.fail("dims", f"duplicate dim name(s) {', '.join(dup)}")
    ee = {}
    for i, dim in enumerate(dims):
        if dim.kind == "ee_delta":
            if dim.axis in ee:
                raise c.fail(f"dims[{i}].axis", f"axis {dim.axis!r} is already used by dims[{ee[dim.axis]}]")
            ee[dim.axis] = i
    ee_dims = tuple(ee[a] for a in AXES) if len(ee) == 3 else None

    workspace = None
    if d.get("workspace") is not None:
        w = c.keys(d["workspace"], "workspace", ("low", "high"), ("low", "high"))
        low, high = c.vector(w["low"], "workspace.low", 3), c.vector(w["high"], "workspace.high", 3)
        for i in range(3):
            if not low[i] < high[i]:
                raise c.fail(f"workspace.low[{i}]", f"must be < workspace.high[{i}] ({low[i]} vs {high[i]})")
        workspace = Workspace(low, high)
    keep_out = []
    raw_ko = d.get("keep_out") or []
    if not isinstance(raw_ko, list):
        raise c.fail("keep_out", "must be a list")
    for i, raw in enumerate(raw_ko):
        keep_out.append(_parse_shape(c, raw, f"keep_out[{i}]"))
    ko_names = [s.name for s in keep_out]
    if len(set(ko_names)) != len(ko_names):
        raise c.fail("keep_out", f"duplicate names in {ko_names}")
    if (workspace is not None or keep_out) and ee_dims is None:
        raise c.fail("workspace" if workspace is not None else "keep_out",
                     "needs three ee_delta dims with axis x, y and z (the end-effector position)")
    if ee_dims is not None and (workspace is not None or keep_out):
        for i in ee_dims:
            if dims[i].state_index is None:
                raise c.fail(f"dims[{i}].state_index", "is required for ee_delta dims when a workspace or "
                                                       "keep_out is given (the measured end-effector position)")
    return SafetyConfig(name=name, control_rate_hz=rate, dims=dims, state_dim=state_dim, workspace=workspace,
                        keep_out=tuple(keep_out), epsilon=epsilon, description=description, _ee=ee_dims)


def _parse_dim(c: _Ctx, raw: Any, where: str, state_dim: int | None) -> DimSpec:
    if isinstance(raw, dict) and raw.get("kind") not in KINDS:
        raise c.fail(f"{where}.kind", f"must be one of {', '.join(KINDS)}, got {raw.get('kind')!r}")
    if not isinstance(raw, dict):
        raise c.fail(where, f"must be a mapping, got {type(raw).__name__}")
    kind = raw["kind"]
    c.keys(raw, f"{where} (kind {kind})", _COMMON_DIM_KEYS + _KIND_KEYS[kind], ("name", "kind"))
    name = raw["name"]
    if not isinstance(name, str) or not name:
        raise c.fail(f"{where}.name", f"must be a non-empty string, got {name!r}")
    kw: dict[str, Any] = {"name": name, "kind": kind}
    if raw.get("state_index") is not None:
        si = c.integer(raw["state_index"], f"{where}.state_index")
        if state_dim is None:
            raise c.fail(f"{where}.state_index", "given but state_dim is null")
        if not 0 <= si < state_dim:
            raise c.fail(f"{where}.state_index", f"{si} is out of range for state_dim {state_dim}")
        kw["state_index"] = si
    for key in ("velocity", "acceleration", "jerk"):
        if raw.get(key) is not None:
            kw[key] = c.number(raw[key], f"{where}.{key}", positive=True)
    if kind in ("joint_position", "joint_velocity"):
        if raw.get("position") is not None:
            kw["position"] = c.interval(raw["position"], f"{where}.position")
            m = c.number(raw.get("soft_margin", 0.0), f"{where}.soft_margin", nonneg=True)
            lo, hi = kw["position"]
            if not lo + m < hi - m:
                raise c.fail(f"{where}.soft_margin", f"{m} leaves no room inside position [{lo}, {hi}]")
            kw["soft_margin"] = m
        elif "soft_margin" in raw:
            raise c.fail(f"{where}.soft_margin", "given without position limits")
        if kind == "joint_position" and "position" not in kw:
            raise c.fail(f"{where}.position", "is required for joint_position dims")
        if kind == "joint_velocity" and "velocity" not in kw:
            raise c.fail(f"{where}.velocity", "is required for joint_velocity dims")
        if "position" in kw and "state_index" not in kw:
            raise c.fail(f"{where}.state_index", f"is required for {kind} dims with position limits "
                                                 "(the measured joint position)")
    elif kind == "ee_delta":
        axis = raw.get("axis")
        if axis not in AXES:
            raise c.fail(f"{where}.axis", f"must be one of x, y, z, got {axis!r}")
        kw["axis"] = axis
        if "scale" not in raw:
            raise c.fail(f"{where}.scale", "is required for ee_delta dims (metres per action unit)")
        kw["scale"] = c.number(raw["scale"], f"{where}.scale", positive=True)
        if raw.get("range") is not None:
            lo, hi = c.interval(raw["range"], f"{where}.range")
            if not lo <= 0.0 <= hi:
                raise c.fail(f"{where}.range", f"must contain 0 (the hold command), got [{lo}, {hi}]")
            kw["range"] = (lo, hi)
    else:  # gripper
        if raw.get("range") is None:
            raise c.fail(f"{where}.range", "is required for gripper dims")
        kw["range"] = c.interval(raw["range"], f"{where}.range")
        if raw.get("hold") is not None:
            h = c.number(raw["hold"], f"{where}.hold")
            if not kw["range"][0] <= h <= kw["range"][1]:
                raise c.fail(f"{where}.hold", f"{h} is outside range {list(kw['range'])}")
            kw["hold"] = h
    return DimSpec(**kw)


def _parse_shape(c: _Ctx, raw: Any, where: str):
    if not isinstance(raw, dict) or raw.get("type") not in _SHAPE_KEYS:
        got = raw.get("type") if isinstance(raw, dict) else raw
        raise c.fail(f"{where}.type", f"must be one of {', '.join(_SHAPE_KEYS)}, got {got!r}")
    kind = raw["type"]
    c.keys(raw, f"{where} (type {kind})", _SHAPE_KEYS[kind], _SHAPE_KEYS[kind])
    name = raw["name"]
    if not isinstance(name, str) or not name:
        raise c.fail(f"{where}.name", f"must be a non-empty string, got {name!r}")
    if kind == "box":
        low, high = c.vector(raw["low"], f"{where}.low", 3), c.vector(raw["high"], f"{where}.high", 3)
        for i in range(3):
            if not low[i] < high[i]:
                raise c.fail(f"{where}.low[{i}]", f"must be < high[{i}] ({low[i]} vs {high[i]})")
        return KeepOutBox(name, low, high)
    if kind == "sphere":
        return KeepOutSphere(name, c.vector(raw["center"], f"{where}.center", 3),
                             c.number(raw["radius"], f"{where}.radius", positive=True))
    normal = c.vector(raw["normal"], f"{where}.normal", 3)
    norm = math.sqrt(sum(x * x for x in normal))
    if norm < 1e-9:
        raise c.fail(f"{where}.normal", "must not be zero")
    return KeepOutPlane(name, c.vector(raw["point"], f"{where}.point", 3), tuple(x / norm for x in normal))


# ---------------------------------------------------------------------- the filter
_EMPTY_TOL = 1e-9  # relative: an intersection empty by less than this is float64 round-off, not a conflict
# Braking plans (stopping before a position limit, the workspace face or a keep-out volume) assume only
# this fraction of the acceleration limit: the 10% left over is the slack that absorbs the float32
# rounding of the commands, so a robot that tracks its commands never needs an acceleration override.
BRAKE_FRACTION = 0.9


@dataclass(frozen=True)
class SafetyReport:
    """What the filter did to one action: the limits the raw action exceeded (``active``), whether the
    output differs from the input (as float32), and whether the input was replaced by the hold command."""

    active: tuple[str, ...] = ()
    modified: bool = False
    held: bool = False

    def to_dict(self) -> dict:
        return {"active": list(self.active), "modified": self.modified, "held": self.held}


def summarize_reports(reports) -> dict:
    """Counts over many reports: steps, steps modified / held, and how often each limit was active."""
    counts: dict[str, int] = {}
    steps = modified = held = 0
    for r in reports:
        steps += 1
        modified += bool(r.modified)
        held += bool(r.held)
        for name in r.active:
            counts[name] = counts.get(name, 0) + 1
    return {"steps": steps, "modified": modified, "held": held, "active": dict(sorted(counts.items()))}


def _stop_total(s: float, delta: float | None) -> float:
    """Distance travelled by a step of length ``s`` followed by braking ``delta`` less per step until stopped."""
    if delta is None or s <= 0:
        return max(s, 0.0)
    n = math.floor(s / delta)
    return (n + 1) * s - delta * n * (n + 1) / 2


def _max_step(dist: float, delta: float | None) -> float:
    """Largest step ``s`` with ``_stop_total(s, delta) <= dist`` (the robot can still stop within ``dist``)."""
    if dist <= 0:
        return 0.0
    if delta is None:
        return dist
    if dist / delta > 1e12:  # continuous limit, slightly conservative
        return min(dist, math.sqrt(2 * delta * dist) * (1 - 1e-5))
    n = int((math.sqrt(1 + 8 * dist / delta) - 1) / 2)
    while delta * (n + 1) * (n + 2) / 2 <= dist:
        n += 1
    while n > 0 and delta * n * (n + 1) / 2 > dist:
        n -= 1
    return min((dist + delta * n * (n + 1) / 2) / (n + 1), (n + 1) * delta)


def _inter(ivs) -> tuple[float, float]:
    lo = max((iv[0] for iv in ivs), default=-math.inf)
    hi = min((iv[1] for iv in ivs), default=math.inf)
    return lo, hi


def _near_empty(lo: float, hi: float) -> bool:
    return lo - hi <= _EMPTY_TOL * (1.0 + abs(lo) + abs(hi))


def _inside_up_to_round_off(v: float, lo: float, hi: float) -> bool:
    """``v`` in [lo, hi], or outside it by float64 round-off only (relative ``_EMPTY_TOL``)."""
    return lo - _EMPTY_TOL * (1 + abs(lo)) <= v <= hi + _EMPTY_TOL * (1 + abs(hi))


def _f32_inside(y: float, lo: float, hi: float) -> np.float32:
    """``y`` as float32, moved by one ulp toward the inside when rounding took it out of [lo, hi]."""
    v = np.float32(y)
    if float(v) > hi:  # compare in float64 (numpy 2 would compare a float32 with a Python float in float32)
        w = np.nextafter(v, np.float32(-np.inf))
        v = w if float(w) >= lo else v
    elif float(v) < lo:
        w = np.nextafter(v, np.float32(np.inf))
        v = w if float(w) <= hi else v
    return v


def _toward_zero_f32(v: np.ndarray) -> np.ndarray:
    """Values as float32 numbers no larger in magnitude (a cut motion must not grow back when cast)."""
    out = v.astype(np.float32)
    grew = np.abs(out.astype(np.float64)) > np.abs(v)
    out[grew] = np.nextafter(out[grew], np.float32(0))
    return out.astype(np.float64)


class _History:
    """Commanded history: the last two commanded velocities and the last command of every dim."""

    def __init__(self, n: int):
        self.u1 = np.full(n, np.nan)  # velocity of the last command (rad/s or m/s)
        self.u2 = np.full(n, np.nan)  # ... and of the one before
        self.last = np.full(n, np.nan)  # last command (action units)

    def copy(self) -> _History:
        h = _History(0)
        h.u1, h.u2, h.last = self.u1.copy(), self.u2.copy(), self.last.copy()
        return h


class SafetyFilter:
    """Clamp actions to an embodiment's limits; see the module docs and docs/safety.md for the guarantees.

    Hard limits (always hold on the output): finite; gripper/action range; joint position limits
    minus the soft margin; velocity limits; workspace box and keep-out volumes for the commanded
    end-effector path. Smoothness (acceleration, jerk, and braking before position limits and
    obstacles) is enforced whenever compatible with the hard limits; otherwise the report carries
    "<limit>.overridden".
    """

    def __init__(self, config: SafetyConfig):
        if not isinstance(config, SafetyConfig):
            raise TypeError(f"SafetyFilter needs a SafetyConfig, got {type(config).__name__}")
        self.config = config
        self.dt = 1.0 / config.control_rate_hz
        self._hist = _History(config.action_dim)
        ee = config.ee_dims
        self._geometry = ee is not None and (config.workspace is not None or bool(config.keep_out))
        self._ee = list(ee) if ee is not None else []
        self._ee_scale = np.array([config.dims[i].scale for i in self._ee], dtype=np.float64)
        acc = [config.dims[i].acceleration for i in self._ee]
        self._ee_acc = np.array(acc, dtype=np.float64) if self._ee and all(a is not None for a in acc) else None
        self._needs_state = any(
            d.state_index is not None and (d.kind in ("joint_position", "joint_velocity") or self._geometry)
            for d in config.dims)

    # ------------------------------------------------------------------ public API
    def reset(self) -> None:
        """Forget the commanded history (start of an episode)."""
        self._hist = _History(self.config.action_dim)

    def hold_action(self, state=None) -> np.ndarray:
        """Zero velocity / zero delta / hold position / gripper kept at its last command."""
        return self._hold(self._state(state), self._hist).astype(np.float32)

    def filter(self, action, state=None) -> tuple[np.ndarray, SafetyReport]:
        """Filter one action float[A] given the measured state float[D]; commits it to the history."""
        out, report, self._hist = self._filter_one(action, self._state(state), self._hist)
        return out, report

    def filter_chunk(self, chunk, state=None, commit: bool = False) -> tuple[np.ndarray, list[SafetyReport]]:
        """Filter an action chunk [H, A], rolling the commanded positions forward as if the robot followed.

        The history is only updated when ``commit`` is True (the whole chunk will be executed)."""
        c = np.asarray(chunk)
        if c.ndim != 2 or c.shape[1] != self.config.action_dim:
            raise ValueError(f"chunk must have shape [H, {self.config.action_dim}], got {c.shape}")
        st = self._state(state)
        hist = self._hist.copy()
        outs, reports = [], []
        for row in c:
            out, report, hist = self._filter_one(row, st, hist)
            outs.append(out)
            reports.append(report)
            if st is not None:
                st = self._roll(st, out)
        if commit:
            self._hist = hist
        arr = np.stack(outs) if outs else np.zeros((0, self.config.action_dim), dtype=np.float32)
        return arr, reports

    # ------------------------------------------------------------------ internals
    def _state(self, state) -> np.ndarray | None:
        cfg = self.config
        if state is None:
            if self._needs_state:
                raise ValueError(f"safety config {cfg.name!r} needs the measured state (state_dim {cfg.state_dim})")
            return None
        st = np.asarray(state, dtype=np.float64).reshape(-1)
        if cfg.state_dim is not None and st.shape != (cfg.state_dim,):
            raise ValueError(f"state must have {cfg.state_dim} values for safety config {cfg.name!r}, "
                             f"got shape {np.shape(state)}")
        return st

    def _roll(self, st: np.ndarray, out: np.ndarray) -> np.ndarray:
        st = st.copy()
        for i, d in enumerate(self.config.dims):
            if d.state_index is None:
                continue
            if d.kind == "ee_delta":
                st[d.state_index] += d.scale * float(out[i])
            elif d.kind == "joint_velocity":
                st[d.state_index] += float(out[i]) * self.dt
            elif d.kind == "joint_position":
                st[d.state_index] = float(out[i])
        return st

    def _hold(self, st: np.ndarray | None, hist: _History) -> np.ndarray:
        out = np.zeros(self.config.action_dim, dtype=np.float64)
        for i, d in enumerate(self.config.dims):
            if d.kind == "joint_position":
                lo, hi = d.position_bounds()
                if np.isfinite(hist.last[i]):
                    out[i] = hist.last[i]
                elif st is not None and d.state_index is not None and np.isfinite(st[d.state_index]):
                    out[i] = min(max(st[d.state_index], lo), hi)
                else:  # nothing known: the middle of the range (documented)
                    out[i] = (lo + hi) / 2
            elif d.kind == "gripper":
                if np.isfinite(hist.last[i]):
                    out[i] = hist.last[i]
                else:
                    out[i] = d.hold if d.hold is not None else (d.range[0] + d.range[1]) / 2
        return out

    def _filter_one(self, action, st, hist: _History) -> tuple[np.ndarray, SafetyReport, _History]:
        a_in = np.asarray(action)
        if a_in.shape != (self.config.action_dim,):
            raise ValueError(f"action must have shape [{self.config.action_dim}], got {a_in.shape}")
        with np.errstate(all="ignore"):
            a32 = a_in.astype(np.float32)
            a = a_in.astype(np.float64)
        active: list[str] = []
        held = not bool(np.all(np.isfinite(a)))
        if held:
            active.append("nonfinite")
            a = self._hold(st, hist)
        out, held_state, hist = self._step(a, st, hist, active)
        modified = held or bool(np.any(out != a32))
        seen = dict.fromkeys(active)
        return out, SafetyReport(tuple(seen), modified, held or held_state), hist

    def _step(self, a: np.ndarray, st, hist: _History, active: list[str]):
        cfg, dt, rate = self.config, self.dt, self.config.control_rate_hz
        n = cfg.action_dim
        y = a.copy()
        keep = [(-math.inf, math.inf)] * n  # interval each output must stay in through the float32 cast
        hard = [(-math.inf, math.inf)] * n
        accel_iv: list[tuple[float, float] | None] = [None] * n
        jerk_iv: list[tuple[float, float] | None] = [None] * n
        gain = np.zeros(n)
        offset = np.zeros(n)
        bad_state = False
        hold = None
        ee_state = None
        if self._geometry:
            idx = [cfg.dims[i].state_index for i in self._ee]
            ee_state = st[idx]
            if not np.all(np.isfinite(ee_state)):
                ee_state = None
                bad_state = True
        for i, d in enumerate(cfg.dims):
            x = float(a[i])
            if d.kind == "gripper":
                lo, hi = d.range
                y[i] = min(max(x, lo), hi)
                if y[i] != x:
                    active.append(f"range.{d.name}")
                keep[i] = hard[i] = (lo, hi)
                continue
            meas = None
            if d.state_index is not None and st is not None:
                meas = float(st[d.state_index])
                if not math.isfinite(meas):
                    meas = None
            if d.kind == "joint_position":
                p_base = hist.last[i] if np.isfinite(hist.last[i]) else meas
                if p_base is None:
                    bad_state = True
                    hold = self._hold(st, hist) if hold is None else hold
                    y[i] = hold[i]
                    keep[i] = hard[i] = d.position_bounds()
                    gain[i], offset[i] = np.nan, np.nan
                    continue
                g, h = rate, -p_base * rate
            elif d.kind == "joint_velocity":
                if d.position is not None and meas is None:
                    bad_state = True
                    y[i] = 0.0
                    gain[i], offset[i] = 1.0, 0.0
                    continue
                g, h, p_base = 1.0, 0.0, meas
            else:  # ee_delta
                if self._geometry and ee_state is None:
                    y[i] = 0.0
                    gain[i], offset[i] = d.scale * rate, 0.0
                    continue
                g, h, p_base = d.scale * rate, 0.0, meas
            gain[i], offset[i] = g, h

            def to_a(u: float, g: float = g, h: float = h) -> float:
                return (u - h) / g

            primary, secondary, brake, acc, jerk = [], [], [], [], []
            if d.velocity is not None:
                (primary if d.kind == "joint_velocity" else secondary).append(
                    (to_a(-d.velocity), to_a(d.velocity), f"velocity.{d.name}"))
            if d.range is not None:
                primary.append((d.range[0], d.range[1], f"range.{d.name}"))
            pb = d.position_bounds()
            if pb is not None:
                lo, hi = pb
                if d.kind == "joint_position":
                    primary.append((lo, hi, f"position.{d.name}"))
                else:  # one step of the velocity may not take it further out
                    primary.append((to_a(min((lo - p_base) / dt, 0.0)), to_a(max((hi - p_base) / dt, 0.0)),
                                    f"position.{d.name}"))
                if d.acceleration is not None:
                    delta = BRAKE_FRACTION * d.acceleration * dt * dt
                    brake.append((to_a(-_max_step(p_base - lo, delta) / dt), to_a(_max_step(hi - p_base, delta) / dt),
                                  f"braking.{d.name}"))
            if d.kind == "ee_delta" and cfg.workspace is not None:
                k = "xyz".index(d.axis)
                wl, wh = cfg.workspace.relaxed(ee_state)
                primary.append(((wl[k] - p_base) / d.scale, (wh[k] - p_base) / d.scale, f"workspace.{d.axis}"))
            u1, u2 = hist.u1[i], hist.u2[i]
            if d.acceleration is not None and np.isfinite(u1):
                acc.append((to_a(u1 - d.acceleration * dt), to_a(u1 + d.acceleration * dt), f"acceleration.{d.name}"))
                accel_iv[i] = acc[0][:2]
            if d.jerk is not None and np.isfinite(u1) and np.isfinite(u2):
                c = 2 * u1 - u2
                jerk.append((to_a(c - d.jerk * dt * dt), to_a(c + d.jerk * dt * dt), f"jerk.{d.name}"))
                jerk_iv[i] = jerk[0][:2]
            y[i], keep[i], hard[i] = self._choose(x, primary, secondary, brake, acc, jerk, active)

        if self._geometry and ee_state is not None:
            before = y[self._ee].copy()
            self._geometry_step(y, ee_state, hist, hard, keep, accel_iv, active)
            for i in self._ee:  # a cut motion may break the jerk limit: say so
                iv = jerk_iv[i]
                if (y[i] != before[self._ee.index(i)] and iv is not None
                        and not _inside_up_to_round_off(y[i], *iv)):
                    active.append("jerk.overridden")
        if bad_state:
            active.append("state.nonfinite")

        out = np.empty(n, dtype=np.float32)
        for i in range(n):
            lo, hi = keep[i]
            yi = float(y[i])
            if lo <= hi and _inside_up_to_round_off(yi, lo, hi):
                yi = min(max(yi, lo), hi)  # outside by float64 round-off only (large magnitudes): snap inside
            v = _f32_inside(yi, lo, hi) if lo <= yi <= hi else None
            if v is None or not hard[i][0] <= float(v) <= hard[i][1]:  # hard limits win over the float32 cast
                v = _f32_inside(min(max(y[i], hard[i][0]), hard[i][1]), *hard[i])
            out[i] = v
        new = hist.copy()
        new.u2 = hist.u1.copy()
        new.u1 = gain * out.astype(np.float64) + offset
        for i, d in enumerate(cfg.dims):
            if d.kind == "gripper":
                new.u1[i] = np.nan
        new.last = out.astype(np.float64)
        return out, bad_state, new

    @staticmethod
    def _choose(x, primary, secondary, brake, acc, jerk, active):
        """Clip ``x`` to the deepest compatible level: hard, + braking, + acceleration, + jerk."""
        hard = primary + secondary
        hlo, hhi = _inter(hard)
        if hlo > hhi:  # only a joint_position whose previous command is outside its limits
            hard = primary
            hlo, hhi = _inter(primary)
            active.append("velocity.overridden")
        levels = [hard + brake + acc + jerk, hard + brake + acc, hard + brake, hard]
        for level, ivs in enumerate(levels):
            lo, hi = _inter(ivs)
            if lo <= hi:
                y = min(max(x, lo), hi)
                break
            if level < 3 and _near_empty(lo, hi):
                y = min(max((lo + hi) / 2, hlo), hhi)
                lo = hi = y
                break
        for iv in primary + secondary + brake + acc + jerk:
            if x < iv[0] or x > iv[1]:
                active.append(iv[2])
        for name, tier in (("jerk", jerk), ("acceleration", acc), ("braking", brake)):
            for lo_t, hi_t, _ in tier:
                tol = _EMPTY_TOL * (1.0 + abs(lo_t) + abs(hi_t))
                if y < lo_t - tol or y > hi_t + tol:
                    active.append(f"{name}.overridden")
                    break
        return y, (lo, hi), (hlo, hhi)

    def _ray_delta(self, d: np.ndarray) -> float | None:
        """Per-step step-length decrement (m) of the braking plan along unit ``d`` (BRAKE_FRACTION of every
        axis' acceleration limit)."""
        if self._ee_acc is None:
            return None
        nz = np.abs(d) > 1e-300
        with np.errstate(over="ignore"):
            return float(BRAKE_FRACTION * self.dt * self.dt * np.min(self._ee_acc[nz] / np.abs(d[nz])))

    def _ray_margin(self, p, disp, low, high):
        """(stopping length, clearance to keep-out, room in the box, keep-out name, box axis) along ``disp``."""
        s = float(np.linalg.norm(disp))
        if s == 0.0:
            return 0.0, math.inf, math.inf, None, None
        d = disp / s
        total = _stop_total(s, self._ray_delta(d))
        t_hit, name = first_entry(self.config.keep_out, p, d)
        t_box, axis = max_travel_in_box(p, d, low, high)
        return total, t_hit, t_box, name, axis

    def _geometry_step(self, y, p, hist, hard, keep, accel_iv, active) -> None:
        """Cut the end-effector motion back so its path (and its braking path) avoids keep-out and stays in the box."""
        cfg, eps, ee = self.config, self.config.epsilon, self._ee
        low, high = cfg.workspace.relaxed(p) if cfg.workspace is not None else (np.full(3, -np.inf),
                                                                                  np.full(3, np.inf))
        ya = y[ee].copy()
        disp = self._ee_scale * ya
        total, t_hit, t_box, name, axis = self._ray_margin(p, disp, low, high)
        if total <= t_box and total <= t_hit - eps / 2:
            return
        s = float(np.linalg.norm(disp))
        free = min(t_box, t_hit - eps)
        if t_hit - eps <= t_box:
            active.append(f"keep_out.{name}")
        else:
            active.append(f"workspace.{'xyz'[axis]}")
        s_new = min(_max_step(free, self._ray_delta(disp / s)), s)
        cut = _toward_zero_f32(ya * (s_new / s))
        choice = cut
        ivs = [accel_iv[i] for i in ee]
        if all(iv is not None for iv in ivs) and not all(
                _inside_up_to_round_off(v, *iv) for iv, v in zip(ivs, cut, strict=True)):
            cont = self._continuation(hist)
            if cont is not None:
                cont = _toward_zero_f32(cont)
            if cont is not None and self._continuation_ok(p, cont, low, high, [hard[i] for i in ee]):
                choice = cont
            else:
                active.append("acceleration.overridden")
        for k, i in enumerate(ee):
            y[i] = choice[k]
            keep[i] = hard[i]
            if choice is not cut and accel_iv[i] is not None:
                lo, hi = max(hard[i][0], accel_iv[i][0]), min(hard[i][1], accel_iv[i][1])
                if lo <= hi:
                    keep[i] = (lo, hi)

    def _continuation(self, hist) -> np.ndarray | None:
        """The braking plan of the last command: same direction, one acceleration step slower (action units)."""
        u1 = hist.u1[self._ee]
        if not np.all(np.isfinite(u1)):
            return None
        disp1 = u1 * self.dt
        s1 = float(np.linalg.norm(disp1))
        if s1 == 0.0:
            return np.zeros(3)
        d1 = disp1 / s1
        s_c = max(s1 - self._ray_delta(d1), 0.0)
        return d1 * s_c / self._ee_scale

    def _continuation_ok(self, p, ya, low, high, hard) -> bool:
        for v, (lo, hi) in zip(ya, hard, strict=True):
            if not lo <= v <= hi:
                return False
        total, t_hit, t_box, _, _ = self._ray_margin(p, self._ee_scale * ya, low, high)
        # the braking path was checked at the previous step; allow for the float32 rounding of that command
        return total <= t_box + 1e-7 * total + 1e-9 and total <= t_hit - 1e-3 * self.config.epsilon
