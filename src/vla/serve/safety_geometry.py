"""Workspace box and keep-out volumes for the safety filter (numpy only).

Every keep-out shape answers one question, :meth:`entry`: moving from ``p`` along the unit
direction ``d``, at which distance ``t >= 0`` does the straight path first enter the (closed)
volume? ``inf`` when it never does. A start point already inside a volume is treated as "may not
go further in": ``entry`` is 0 when the direction increases the penetration and ``inf`` when it
keeps it or moves back out (the volumes are convex, so a path that leaves never re-enters).

A plane keeps out the half-space behind it: points with ``(x - point) . normal < 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["KeepOutBox", "KeepOutPlane", "KeepOutSphere", "Workspace", "first_entry", "max_travel_in_box"]


def _vec3(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float64).reshape(3)


@dataclass(frozen=True)
class Workspace:
    """Axis-aligned box the end effector must stay inside (metres)."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def relaxed(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The box grown just enough to contain ``p``: a start outside may not move further out."""
        return np.minimum(_vec3(self.low), p), np.maximum(_vec3(self.high), p)


def max_travel_in_box(p: np.ndarray, d: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[float, int | None]:
    """Longest distance along unit ``d`` from ``p`` (inside [low, high]) that stays in the box, and the axis
    whose face ends it (None when unbounded)."""
    t, axis = math.inf, None
    for i in range(3):
        if d[i] > 1e-300:
            ti = (high[i] - p[i]) / d[i]
        elif d[i] < -1e-300:
            ti = (low[i] - p[i]) / d[i]
        else:
            continue
        if ti < t:
            t, axis = ti, i
    return max(t, 0.0), axis


@dataclass(frozen=True)
class KeepOutBox:
    name: str
    low: tuple[float, float, float]
    high: tuple[float, float, float]
    kind = "box"

    def depth(self, x: np.ndarray) -> float:
        """Distance to the nearest face when inside (> 0), <= 0 outside (not a true distance outside)."""
        lo, hi = _vec3(self.low), _vec3(self.high)
        return float(np.min(np.minimum(x - lo, hi - x)))

    def entry(self, p: np.ndarray, d: np.ndarray) -> float:
        lo, hi = _vec3(self.low), _vec3(self.high)
        if np.all(p >= lo) and np.all(p <= hi):  # inside (or on the surface)
            dist = np.concatenate([p - lo, hi - p])  # faces: -x, -y, -z, +x, +y, +z
            f = int(np.argmin(dist))
            outward = -d[f] if f < 3 else d[f - 3]
            return 0.0 if outward < 0 else math.inf
        t_in, t_out = 0.0, math.inf
        for i in range(3):
            if abs(d[i]) < 1e-300:
                if p[i] < lo[i] or p[i] > hi[i]:
                    return math.inf
                continue
            t1, t2 = (lo[i] - p[i]) / d[i], (hi[i] - p[i]) / d[i]
            t_in, t_out = max(t_in, min(t1, t2)), min(t_out, max(t1, t2))
        return t_in if t_in <= t_out else math.inf

    def to_dict(self) -> dict:
        return {"name": self.name, "type": "box", "low": list(self.low), "high": list(self.high)}


@dataclass(frozen=True)
class KeepOutSphere:
    name: str
    center: tuple[float, float, float]
    radius: float
    kind = "sphere"

    def depth(self, x: np.ndarray) -> float:
        return float(self.radius - np.linalg.norm(x - _vec3(self.center)))

    def entry(self, p: np.ndarray, d: np.ndarray) -> float:
        m = p - _vec3(self.center)
        b = float(d @ m)
        c = float(m @ m) - self.radius**2
        if c <= 0.0:  # inside: the distance to the centre must not decrease
            return 0.0 if b < 0 else math.inf
        disc = b * b - c
        if b >= 0 or disc < 0:
            return math.inf
        return max(-b - math.sqrt(disc), 0.0)

    def to_dict(self) -> dict:
        return {"name": self.name, "type": "sphere", "center": list(self.center), "radius": self.radius}


@dataclass(frozen=True)
class KeepOutPlane:
    name: str
    point: tuple[float, float, float]
    normal: tuple[float, float, float]  # unit; the free side is where it points
    kind = "plane"

    def depth(self, x: np.ndarray) -> float:
        return float(-(x - _vec3(self.point)) @ _vec3(self.normal))

    def entry(self, p: np.ndarray, d: np.ndarray) -> float:
        n = _vec3(self.normal)
        h = float((p - _vec3(self.point)) @ n)
        dn = float(d @ n)
        if h <= 0.0:  # behind the plane already: may not go deeper
            return 0.0 if dn < 0 else math.inf
        return h / -dn if dn < 0 else math.inf

    def to_dict(self) -> dict:
        return {"name": self.name, "type": "plane", "point": list(self.point), "normal": list(self.normal)}


KeepOut = KeepOutBox | KeepOutSphere | KeepOutPlane


def first_entry(shapes, p: np.ndarray, d: np.ndarray) -> tuple[float, str | None]:
    """Smallest entry distance over ``shapes`` along unit ``d`` from ``p``, and that shape's name."""
    best, name = math.inf, None
    for s in shapes:
        t = s.entry(p, d)
        if t < best:
            best, name = t, s.name
    return best, name
