"""Benchmark scripted MetaWorld collection: wall time and rendered frames/s.

Runs ``vla.sim.collect.collect_metaworld`` (same arguments as ``vla collect metaworld``) into a
temporary folder (kept with --keep-dataset DIR) and writes the summary as JSON, adding rendered
frames/s = camera images rendered (all attempts, rejected ones included) / wall time.
Target: >= 150 frames/s with 2 workers, one camera, 128x128.

    MUJOCO_GL=egl nice python benchmarks/collect.py --suite mt10 --episodes-per-task 5 \
        --workers 2 --cameras corner2 --image-size 128 [--out benchmarks/results/collect.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


def main() -> None:
    from vla.sim.collect import collect_metaworld

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="mt10")
    ap.add_argument("--episodes-per-task", type=int, default=5)
    ap.add_argument("--cameras", default="corner2")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/collect.json", help="JSON file to write")
    ap.add_argument("--keep-dataset", default=None, help="write the dataset here and keep it")
    args = ap.parse_args()

    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="vla-collect-bench-"))
    target = Path(args.keep_dataset) if args.keep_dataset else tmp / "dataset"
    try:
        summary = collect_metaworld(args.suite, target, episodes_per_task=args.episodes_per_task,
                                    cameras=tuple(c for c in args.cameras.split(",") if c), image_size=args.image_size,
                                    workers=args.workers, seed=args.seed, progress=True)
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "benchmark": "metaworld scripted collection",
        "command": f"vla collect metaworld --suite {args.suite} --episodes-per-task {args.episodes_per_task} "
                   f"--cameras {args.cameras} --image-size {args.image_size} --workers {args.workers} "
                   f"--seed {args.seed}",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
                    "loadavg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
                    "note": "the CPUs are shared with other jobs; load > cpus means less than a full core per worker"},
        "wall_time_s": summary["wall_time_s"],
        "rendered_frames_per_s": summary["rendered_images_per_s"],
        "dataset_frames_per_s": summary["frames_per_s"],
        "dataset_bytes": size,
        "target_rendered_frames_per_s": 150,
        "summary": summary,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("wall_time_s", "rendered_frames_per_s", "dataset_frames_per_s")}))
    print("wrote", out)


if __name__ == "__main__":
    main()
