"""Catalog search benchmark: build a catalog of >= 10,000 episodes (synthetic rows with realistic
facets and MetaWorld/real-robot instructions) and time typical searches. Target: < 50 ms each.

    python benchmarks/catalog.py --episodes 12000 --out runs/catalog/catalog.json

Each query runs ``--repeat`` times (count + first page of results, as ``vla catalog search``
does); the JSON has median, p95 and max milliseconds per query and the matching episode count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vla.data.catalog import Catalog, Query, task_category

INSTRUCTIONS = [
    "open the drawer", "close the drawer", "open the door", "pick up the puck and place it at the goal",
    "push the puck to the goal", "insert the peg into the hole", "press the button from above",
    "open the window", "close the window", "reach the goal", "Pick up the yellow bottle on the table.",
    "put the red block in the bowl", "fold the towel", "wipe the table", "navigate to the kitchen",
    "stack the green cube on the blue cube", "turn on the faucet", "pour water into the cup",
]
ROBOTS = [("sawyer", "fixed_base_arm"), ("franka_panda", "fixed_base_arm"), ("widowx", "fixed_base_arm"),
          ("aloha", "bimanual"), ("unitree_g1", "humanoid"), ("stretch", "mobile_manipulator")]
LICENSES = ["MIT", "Apache-2.0", "CC-BY-4.0", "CC-BY-NC-4.0"]
SCENES = ["low", "medium", "high"]

QUERIES = {
    "all (first page)": Query(),
    "embodiment": Query(embodiment="humanoid"),
    "robot + task category": Query(robot="franka_panda", task_category="pick-and-place"),
    "scene + min quality": Query(scene="high", min_quality=0.9),
    "license": Query(license="CC-BY-4.0"),
    "text 'drawer'": Query(text="drawer"),
    "text 'red block' + embodiment": Query(text="red block", embodiment="fixed_base_arm"),
    "text + task + quality + license": Query(text="open", task_category="articulated-object", min_quality=0.5,
                                            license="MIT"),
    "no match": Query(text="zebra"),
}


def build(cat: Catalog, n_episodes: int, per_dataset: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for d in range(int(np.ceil(n_episodes / per_dataset))):
        robot, emb = ROBOTS[int(rng.integers(0, len(ROBOTS)))]
        lic = LICENSES[int(rng.integers(0, len(LICENSES)))]
        dataset = {"path": f"/data/ds_{d:05d}", "name": f"ds_{d:05d}", "fingerprint": f"{d}", "robot": robot,
                   "embodiment_type": emb, "fps": 30.0, "num_episodes": per_dataset, "license": lic}
        eps = []
        for e in range(per_dataset):
            instr = INSTRUCTIONS[int(rng.integers(0, len(INSTRUCTIONS)))]
            eps.append({"episode_index": e, "length": int(rng.integers(50, 500)), "instruction": instr,
                        "task_category": task_category(instr), "scene_complexity": SCENES[int(rng.integers(0, 3))],
                        "quality": float(rng.beta(8, 2)), "license": lic, "robot": robot, "embodiment_type": emb,
                        "collection_method": "teleoperation", "collector_id": f"op{int(rng.integers(0, 20))}",
                        "control_rate_hz": 30.0, "provenance_json": {"collector_id": "x"}})
        cat.upsert(dataset, eps)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=12_000)
    ap.add_argument("--per-dataset", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/catalog/catalog.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "catalog.sqlite"
        cat = Catalog(path)
        build_s = build(cat, args.episodes, args.per_dataset, args.seed)
        total = cat.count(Query())[0]
        cat.close()
        reader = Catalog(path, readonly=True)  # as a search command opens it
        results = {}
        for name, q in QUERIES.items():
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                n, _ = reader.count(q)
                rows = reader.search(Query(**{**q.__dict__, "limit": 50}))
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            results[name] = {"matches": n, "returned": len(rows), "median_ms": round(statistics.median(times), 2),
                             "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2), "max_ms": round(times[-1], 2)}
        t = time.perf_counter()
        stats = reader.stats()
        stats_ms = (time.perf_counter() - t) * 1000
        reader.close()
        size = path.stat().st_size
    worst = max(r["p95_ms"] for r in results.values())
    out = {"episodes": total, "datasets": int(np.ceil(args.episodes / args.per_dataset)),
           "build_seconds": round(build_s, 2), "catalog_bytes": size, "repeat": args.repeat, "queries": results,
           "stats_ms": round(stats_ms, 2), "stats_frames": stats["frames"], "worst_p95_ms": worst,
           "target_ms": 50, "meets_target": worst < 50}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
