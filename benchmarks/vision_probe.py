"""Which EfficientNet-Lite0 features locate objects best: a linear probe on frozen tokens.

Renders MetaWorld scenes (both default cameras, 128 px) after a random number of scripted-expert steps
from random resets, for tasks where the goal or object position is what the policy must read (reach:
the goal marker; pick-place and peg-insert-side: the object), and fits ridge regression (closed form,
regularization chosen on a validation split) from the frozen features of both cameras to the
simulator's object and goal positions. Reports the held-out mean absolute error in cm per feature set
(stride 16 pooled to 4x4 and the full 8x8 map, stride 32 4x4, stride 8 pooled to 4x4 and 8x8) and, as
references, a linear probe on the raw pixels (16x16 downsampled) and the constant mean. A linear probe
measures what is linearly readable, a lower bound on what the policy's attention can read.
JSON to stdout and --out (default benchmarks/results/vision_probe.json).

    OMP_NUM_THREADS=1 MUJOCO_GL=egl nice -n 19 python benchmarks/vision_probe.py [--scenes 240]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result  # noqa: E402
from vla.models.image_ops import to_float_nchw  # noqa: E402
from vla.models.vision_efficientnet import EfficientNetEncoder  # noqa: E402

TASKS = {"reach-v3": "goal", "pick-place-v3": "object", "peg-insert-side-v3": "object"}


def scenes(task: str, n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Images per camera [n, 128, 128, 3] and the target position [n, 3] (m) of ``task``'s object/goal."""
    from vla.sim.env import MetaWorldEnv

    rng = np.random.default_rng(seed)
    images: dict[str, list[np.ndarray]] = {}
    targets = []
    with MetaWorldEnv(task, seed=seed) as env:
        for i in range(n):
            env.reset(seed=seed * 100_000 + i)
            for _ in range(int(rng.integers(0, 40))):  # step the simulator without rendering every frame
                full, *_ = env._mw.step(env.expert_action())
                env._full_obs = np.asarray(full, dtype=np.float64)
            full = env._full_obs  # simulator truth, for the probe's target only
            targets.append(full[-3:] if TASKS[task] == "goal" else full[4:7])
            for cam, img in env.render().items():
                images.setdefault(cam, []).append(img)
    return {c: np.stack(v) for c, v in images.items()}, np.asarray(targets, dtype=np.float64)


def ridge_mae(x: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> float:
    """Held-out MAE (same units as y) of ridge regression, lambda picked on ``val`` (dual form)."""
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    z = (x - mu) / sd
    ym = y[train].mean(0)

    def fit(idx_fit: np.ndarray, lam: float) -> np.ndarray:
        k = z[idx_fit] @ z[idx_fit].T
        alpha = np.linalg.solve(k + lam * np.eye(len(idx_fit)) * np.trace(k) / len(idx_fit), y[idx_fit] - ym)
        return z[idx_fit].T @ alpha

    best = min((float(np.abs(z[val] @ fit(train, lam) + ym - y[val]).mean()), lam)
               for lam in (1e-3, 1e-2, 1e-1, 1.0, 10.0))
    w = fit(np.concatenate([train, val]), best[1])
    return float(np.abs(z[test] @ w + ym - y[test]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=240, help="scenes per task (60%% fit, 20%% val, 20%% test)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "vision_probe.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    enc32 = EfficientNetEncoder(d_model=8, grid=4, stride=32).eval()
    enc16 = EfficientNetEncoder(d_model=8, grid=4, stride=16).eval()
    results = {}
    t0 = time.perf_counter()
    for ti, (task, what) in enumerate(TASKS.items()):
        images, y = scenes(task, args.scenes, seed=ti + 1)
        feats: dict[str, list[np.ndarray]] = {}
        for imgs in images.values():
            x = to_float_nchw(torch.from_numpy(imgs))
            with torch.no_grad():
                f16, f8 = enc16.features(x)
                f32, _ = enc32.features(x)
            sets = {"stride16_grid4": F.adaptive_avg_pool2d(f16, 4), "stride16_grid8": f16,
                    "stride32_grid4": f32, "stride8_grid4": F.adaptive_avg_pool2d(f8, 4),
                    "stride8_grid8": F.adaptive_avg_pool2d(f8, 8),
                    "pixels_16x16": F.adaptive_avg_pool2d(x, 16)}
            for name, t in sets.items():
                feats.setdefault(name, []).append(t.flatten(1).numpy())
        rng = np.random.default_rng(0)
        order = rng.permutation(len(y))
        n_fit, n_val = int(0.6 * len(y)), int(0.2 * len(y))
        train, val, test = order[:n_fit], order[n_fit:n_fit + n_val], order[n_fit + n_val:]
        row = {"target": what, "scenes": len(y), "target_spread_cm": float(100 * np.abs(y - y.mean(0)).mean()),
               "mae_cm": {"constant_mean": float(100 * np.abs(y[test] - y[train].mean(0)).mean())}}
        for name, parts in feats.items():
            x = np.concatenate(parts, axis=1).astype(np.float64)
            row["mae_cm"][name] = 100 * ridge_mae(x, y, train, val, test)
            row.setdefault("dims", {})[name] = int(x.shape[1])
        results[task] = row
        print(task, {k: round(v, 2) for k, v in row["mae_cm"].items()}, flush=True)
    result = {
        "benchmark": "linear probe (ridge) from frozen EfficientNet-Lite0 features of both cameras to the "
                     "simulator's object/goal position",
        "command": " ".join(["OMP_NUM_THREADS=1 MUJOCO_GL=egl nice -n 19 python benchmarks/vision_probe.py",
                             *sys.argv[1:]]),
        "settings": {"scenes_per_task": args.scenes, "split": "60% fit / 20% lambda / 20% test",
                     "image_size": 128, "cameras": ["corner4", "gripperPOV"]},
        "tasks": results, "wall_s": round(time.perf_counter() - t0, 1), "machine": machine_info(),
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
