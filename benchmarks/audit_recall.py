"""Audit recall benchmark: inject every fault type at several strengths into clean episodes and
measure, per fault type, the detection recall and the false-positive rate on untouched episodes.

Clean sources:
- MetaWorld scripted-expert demonstrations (``--metaworld DIR``, else collected once with
  ``vla.sim`` into ``--cache``: MT10, 6 successful episodes per task, camera corner4 at 64 px);
- the real LeRobot v2.1 fixture unitree_g1_pick_bottle (one 221-frame episode, read through
  ``Dataset.open``), cut into overlapping windows of 150-200 frames;
- the real robosuite Lift demo (HDF5, read with h5py; 412 frames, no camera, 20 Hz), cut into
  windows of 250-330 frames.

Each round injects one fault into a quarter of a source's episodes (at most one per task for
MetaWorld), audits the whole set with ``audit_arrays`` and counts: recall = injected episodes
with a finding of the injected type; false positive = untouched episode with any finding
(``fp_raw``) or with a finding its clean audit did not already have (``fp_new``: the real
fixture has genuine problems, see ``baseline`` in the JSON). Output: JSON + a markdown table.

    python benchmarks/audit_recall.py --out runs/audit_recall [--rounds 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from vla.data.audit import EpisodeArrays, audit_arrays, load_episodes
from vla.data.audit.inject import FAULTS, applicable, injection_context

FIXTURES = Path(os.environ.get("VLA_FIXTURES", "/work/shared/fixtures/real"))
UNITREE = FIXTURES / "lerobot_v2.1" / "unitree_g1_pick_bottle"
ROBOSUITE = FIXTURES / "hdf5" / "robosuite_lift_panda_demo.hdf5"


def metaworld_source(path: Path | None, cache: Path) -> dict:
    from vla.data import Dataset

    if path is None:
        path = cache / "metaworld_mt10"
        if not (path / "meta" / "info.json").exists():
            os.environ.setdefault("MUJOCO_GL", "egl")
            from vla.sim.collect import collect_metaworld

            print(f"collecting MetaWorld demonstrations into {path} ...", file=sys.stderr)
            collect_metaworld("mt10", path, episodes_per_task=6, cameras=("corner4",), image_size=64,
                              workers=1, seed=0, overwrite=True, progress=False)
    ds = Dataset.open(path)
    eps = list(load_episodes(ds))
    emb = ds.embodiment or {}
    return {"name": "metaworld", "episodes": eps, "fps": ds.fps, "names": emb.get("action_names"),
            "gripper": emb.get("gripper_dims") or None, "stratify": True, "path": str(path)}


def _windows(ep: EpisodeArrays, rng: np.random.Generator, n: int, lo: int, hi: int) -> list[EpisodeArrays]:
    out, seen = [], set()
    while len(out) < n:
        L = int(rng.integers(lo, min(hi, ep.length) + 1))
        s = int(rng.integers(0, ep.length - L + 1))
        if (s, L) in seen:
            continue
        seen.add((s, L))
        sl = slice(s, s + L)
        out.append(EpisodeArrays(len(out), ep.timestamps[sl] - ep.timestamps[s], ep.state[sl].copy(),
                                 ep.action[sl].copy(), {k: v[sl].copy() for k, v in ep.images.items()},
                                 list(ep.tasks), dict(ep.provenance)))
    return out


def unitree_source(rng: np.random.Generator, n: int = 16) -> dict:
    from vla.data import Dataset

    ds = Dataset.open(UNITREE)
    ep = next(load_episodes(ds))
    names = ds.features["action"].get("names")
    names = names[0] if names and isinstance(names[0], list) else names
    return {"name": "unitree_g1 (real, LeRobot v2.1)", "episodes": _windows(ep, rng, n, 150, 200), "fps": ds.fps,
            "names": names, "gripper": None, "stratify": False, "path": str(UNITREE)}


def robosuite_source(rng: np.random.Generator, n: int = 16) -> dict:
    import h5py

    with h5py.File(ROBOSUITE, "r") as f:
        a = f["data/demo_1/actions"][:].astype(np.float64)
        s = f["data/demo_1/states"][:].astype(np.float64)
    fps = 20.0  # robosuite's default control frequency
    ep = EpisodeArrays(0, np.arange(len(a)) / fps, s, a, {}, ["lift the cube"],
                       {"source": {"path": "robosuite/Lift"}})
    return {"name": "robosuite_lift (real, HDF5)", "episodes": _windows(ep, rng, n, 250, 330), "fps": fps,
            "names": None, "gripper": [6], "stratify": False, "path": str(ROBOSUITE)}


def pick(src: dict, rng: np.random.Generator) -> set[int]:
    eps = src["episodes"]
    if src["stratify"]:
        from vla.data.audit.episode import group_key

        groups: dict[str, list[int]] = {}
        for e in eps:
            groups.setdefault(group_key(e), []).append(e.index)
        return {int(rng.choice(v)) for v in groups.values()}
    return set(rng.choice([e.index for e in eps], size=max(1, len(eps) // 4), replace=False).tolist())


def run_source(src: dict, rounds: int, seed: int, only: list[str] | None = None) -> dict:
    eps = src["episodes"]
    kw = {"action_names": src["names"], "gripper": src["gripper"]}
    base = audit_arrays(eps, src["fps"], **kw)
    baseline = {e.episode: sorted({f.type for f in e.findings}) for e in base.episodes}
    ctx = injection_context(eps)
    if src["gripper"]:
        from vla.data.audit.action_checks import gripper_levels

        ctx["gripper_dims"] = src["gripper"]
        ctx["gripper_levels"] = gripper_levels([e.action for e in eps], src["gripper"])
    out = {"episodes": len(eps), "fps": src["fps"], "path": src["path"],
           "clean_flagged": {str(k): v for k, v in baseline.items() if v},
           "relation": base.context.get("action_model"), "faults": {}}
    for name, fault in FAULTS.items():
        if only and not any(o in name for o in only):
            continue
        if not applicable(fault, eps, ctx):
            out["faults"][name] = None
            continue
        rows = []
        for strength in fault.strengths:
            rng = np.random.default_rng([seed, zlib.crc32(name.encode()), int(strength * 1000)])
            hit = tot = fp_raw = fp_new = clean = 0
            t0 = time.perf_counter()
            for _ in range(rounds):
                idx = pick(src, rng)
                donors = [e for e in eps if e.index not in idx]
                data = [fault.inject(e, rng, strength, donors, ctx) if e.index in idx else e for e in eps]
                rep = audit_arrays(data, src["fps"], **kw)
                for er in rep.episodes:
                    if er.episode in idx:
                        tot += 1
                        hit += er.has(name)
                    else:
                        clean += 1
                        types = {f.type for f in er.findings}
                        fp_raw += bool(types)
                        fp_new += bool(types - set(baseline.get(er.episode, [])))
            rows.append({"strength": strength, "documented": strength == fault.documented, "injected": tot,
                         "recall": hit / tot if tot else None, "clean": clean,
                         "fp_raw": fp_raw / clean if clean else None, "fp_new": fp_new / clean if clean else None,
                         "seconds": round(time.perf_counter() - t0, 2)})
        out["faults"][name] = {"unit": fault.unit, "documented": fault.documented, "rows": rows}
        doc = next(r for r in rows if r["documented"])
        print(f"  {name:32s} recall@doc {doc['recall']:.2f}  fp_new {doc['fp_new']:.3f}", file=sys.stderr)
    return out


def markdown(results: dict) -> str:
    lines = ["| fault type | unit | documented strength | " + " | ".join(results["sources"]) + " |",
             "|---|---|---|" + "---|" * len(results["sources"])]
    for name, fault in FAULTS.items():
        cells = []
        if not any(name in src["faults"] for src in results["sources"].values()):
            continue
        for src in results["sources"].values():
            f = src["faults"].get(name)
            if f is None:
                cells.append("n/a")
                continue
            parts = []
            for r in f["rows"]:
                txt = f"{r['strength']:g}: {r['recall']:.2f}"
                parts.append(f"**{txt}**" if r["documented"] else txt)
            doc = next(r for r in f["rows"] if r["documented"])
            cells.append(" / ".join(parts) + f" (fp {100 * doc['fp_new']:.1f}%)")
        lines.append(f"| {name} | {fault.unit} | {fault.documented:g} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Cells: recall per strength (documented strength in bold), and the false-positive rate on "
                 "untouched episodes at the documented strength (findings the clean audit did not have).")
    s = results["summary"]
    lines.append(f"Overall at documented strengths: recall {s['recall_documented']:.3f} "
                 f"(min {s['recall_documented_min']:.2f}, {s['below_target']} cells below 0.95), "
                 f"false positives new {100 * s['fp_new']:.2f}% / raw {100 * s['fp_raw']:.2f}% of clean episodes.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/audit_recall"))
    ap.add_argument("--metaworld", type=Path, default=None, help="MetaWorld demo dataset (else collected)")
    ap.add_argument("--cache", type=Path, default=Path("runs/audit_recall/cache"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sources", default="metaworld,unitree,robosuite")
    ap.add_argument("--faults", default="", help="comma-separated substrings: only these fault types")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    loaders = {"metaworld": lambda: metaworld_source(args.metaworld, args.cache),
               "unitree": lambda: unitree_source(rng), "robosuite": lambda: robosuite_source(rng)}
    results: dict = {"seed": args.seed, "rounds": args.rounds, "sources": {}}
    for key in args.sources.split(","):
        src = loaders[key]()
        print(f"{src['name']}: {len(src['episodes'])} clean episodes", file=sys.stderr)
        only = [f for f in args.faults.split(",") if f]
        results["sources"][src["name"]] = run_source(src, args.rounds, args.seed, only)
    docs = [r for s in results["sources"].values() for f in s["faults"].values() if f for r in f["rows"]
            if r["documented"]]
    results["summary"] = {
        "recall_documented": float(np.mean([r["recall"] for r in docs])),
        "recall_documented_min": float(min(r["recall"] for r in docs)),
        "below_target": sum(r["recall"] < 0.95 for r in docs),
        "fp_new": sum(r["fp_new"] * r["clean"] for r in docs) / sum(r["clean"] for r in docs),
        "fp_raw": sum(r["fp_raw"] * r["clean"] for r in docs) / sum(r["clean"] for r in docs),
        "targets": {"recall": 0.95, "false_positive_rate": 0.02},
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "audit_recall.json").write_text(json.dumps(results, indent=2))
    md = markdown(results)
    (args.out / "audit_recall.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
