"""An independent check of an executed action against a SafetyConfig's hard limits.

The filter (``vla.serve.safety``) makes actions safe; this module only looks at the result, with none of
the filter's code, so that "0 limit violations" in an evaluation report is a measurement and not a
restatement of the filter. Checked: finite values; each dim's range / soft position bounds; end-effector
velocity; the commanded end-effector path (sampled along the segment) inside the workspace box and
outside every keep-out volume, allowing a start already outside the box or inside a volume to stay put or
move back. numpy only.
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-5  # float32 rounding of the filter's output


def limit_violations(cfg, action: np.ndarray, state: np.ndarray | None) -> list[str]:
    """Names of the hard limits ``action`` breaks in ``state`` (empty when it is safe)."""
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape != (cfg.action_dim,):
        return [f"shape: {a.shape} for {cfg.action_dim} dims"]
    if not np.isfinite(a).all():
        return ["nonfinite"]
    out: list[str] = []
    s = None if state is None else np.asarray(state, dtype=np.float64).reshape(-1)
    for i, dim in enumerate(cfg.dims):
        bounds = dim.range if dim.kind in ("ee_delta", "gripper") else None
        if dim.kind == "joint_position":
            bounds = dim.position_bounds()
        if bounds is not None and not (bounds[0] - TOLERANCE <= a[i] <= bounds[1] + TOLERANCE):
            out.append(f"range.{dim.name}")
        if dim.kind == "ee_delta" and dim.velocity is not None:
            if abs(a[i] * dim.scale) * cfg.control_rate_hz > dim.velocity * (1 + TOLERANCE) + TOLERANCE:
                out.append(f"velocity.{dim.name}")
        if dim.kind == "joint_velocity" and dim.velocity is not None and abs(a[i]) > dim.velocity + TOLERANCE:
            out.append(f"velocity.{dim.name}")
    ee = cfg.ee_dims
    if ee is None or s is None:
        return out
    idx = [cfg.dims[i].state_index for i in ee]
    if any(j is None or j >= len(s) for j in idx):
        return out
    p = s[idx]
    q = p + np.array([a[i] * cfg.dims[i].scale for i in ee])
    path = p[None] + np.linspace(0.0, 1.0, 33)[:, None] * (q - p)[None]
    if cfg.workspace is not None:
        low, high = np.asarray(cfg.workspace.low), np.asarray(cfg.workspace.high)
        low, high = np.minimum(low, p), np.maximum(high, p)  # a start outside may stay, not go further out
        if ((path < low - TOLERANCE) | (path > high + TOLERANCE)).any():
            out.append("workspace")
    for k, shape in enumerate(cfg.keep_out):
        start = max(shape.depth(p), 0.0)
        if any(shape.depth(x) > start + TOLERANCE for x in path[1:]):
            out.append(f"keep_out.{getattr(shape, 'name', None) or k}")
    return out
