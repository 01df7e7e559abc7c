"""Benchmark training throughput: samples/s and the share of step time spent waiting for data.

Writes a synthetic dataset (random frames, PNG) with DatasetWriter unless --dataset is given,
then runs vla.train.train for --steps steps with the default policy (or key=value overrides) and
reports samples/s (wall, and per CPU-second of this process: robust on a shared machine) and
the data-wait share after the first epoch. JSON to stdout and --out
(default benchmarks/results/train_throughput.json).

    OMP_NUM_THREADS=1 nice python benchmarks/train_throughput.py [--steps 120] [--dataset DIR] [key=value ...]
    OMP_NUM_THREADS=1 nice python benchmarks/train_throughput.py --nproc 2 --batch-size 32   # torchrun, DDP

With --nproc N the run goes through ``torchrun --standalone --nproc_per_node N -m vla.train`` and
--batch-size is per process (global batch = N x batch size).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result  # noqa: E402
from vla.train.config import make_config  # noqa: E402
from vla.train.loop import train  # noqa: E402


def synthetic_dataset(root: Path, cameras: list[str], size: int, episodes: int, length: int) -> Path:
    from vla.data import DatasetWriter, Provenance

    rng = np.random.default_rng(0)
    features = {"observation.state": {"dtype": "float32", "shape": [4], "names": None},
                "action": {"dtype": "float32", "shape": [4], "names": None}}
    for cam in cameras:
        features[f"observation.images.{cam}"] = {"dtype": "image", "shape": [size, size, 3],
                                                 "names": ["height", "width", "channels"]}
    base = rng.integers(0, 256, (8, size, size, 3), dtype=np.uint8)
    with DatasetWriter(root, fps=80, features=features, robot_type="synthetic", use_videos=False) as w:
        for e in range(episodes):
            for t in range(length):
                frame = {"observation.state": rng.normal(size=4).astype(np.float32),
                         "action": rng.uniform(-1, 1, 4).astype(np.float32)}
                for cam in cameras:
                    frame[f"observation.images.{cam}"] = base[(e + t) % 8]
                w.add_frame(frame, task=f"task {e % 10}")
            w.save_episode(Provenance(collector_id="benchmarks.train_throughput", collection_method="scripted"))
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="train/policy key=value settings")
    ap.add_argument("--dataset", type=Path)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--length", type=int, default=100)
    ap.add_argument("--nproc", type=int, default=1, help="processes (torchrun + DDP) when > 1")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train_throughput.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vla-train-bench-") as tmp:
        tmp = Path(tmp)
        cfg = make_config(args.dataset or tmp / "dataset", tmp / "run", None,
                          [f"steps={args.steps}", f"batch_size={args.batch_size}", "log_every=10",
                           f"checkpoint_every={args.steps}", "warmup_steps=10", "progress=false", *args.overrides])
        from vla.models import PolicyConfig

        pcfg = PolicyConfig.from_dict({**cfg.policy})
        t0 = time.perf_counter()
        if args.dataset is None:
            synthetic_dataset(tmp / "dataset", pcfg.cameras, pcfg.image_size, args.episodes, args.length)
        t_data = time.perf_counter() - t0
        who = resource.RUSAGE_SELF if args.nproc == 1 else resource.RUSAGE_CHILDREN
        c0 = resource.getrusage(who)
        t1 = time.perf_counter()
        if args.nproc == 1:
            run = train(cfg)
        else:
            cfg_file = tmp / "train.json"
            cfg_file.write_text(json.dumps({k: v for k, v in cfg.to_dict().items() if k not in ("dataset", "out")}))
            subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                            str(args.nproc), "-m", "vla.train", "--dataset", cfg.dataset, "--out", cfg.out,
                            "--config", str(cfg_file)], check=True, stdout=subprocess.DEVNULL)
            run = Path(cfg.out)
        t_train = time.perf_counter() - t1
        c1 = resource.getrusage(who)
        summary = json.loads((run / "summary.json").read_text())
        records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    cpu_s = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    global_batch = args.batch_size * args.nproc
    steady = [r for r in records if "samples_per_s" in r][1:]  # drop the first window (warm-up)
    result = {
        "benchmark": "training throughput (vla.train.train, default policy unless overridden)",
        "command": " ".join(["python", "benchmarks/train_throughput.py", *sys.argv[1:]]),
        "settings": {"steps": args.steps, "batch_size_per_process": args.batch_size, "processes": args.nproc,
                     "global_batch": global_batch, "overrides": args.overrides,
                     "dataset": str(args.dataset) if args.dataset else
                     f"synthetic: {args.episodes} episodes x {args.length} frames, PNG",
                     "cameras": pcfg.cameras, "image_size": pcfg.image_size, "params": summary["params"],
                     "torch_threads": torch.get_num_threads()},
        "samples_per_s_steady": float(np.median([r["samples_per_s"] for r in steady])) if steady else None,
        "samples_per_s_after_first_epoch": summary["samples_per_s_after_first_epoch"],
        "data_wait_frac_after_first_epoch": summary["data_wait_frac_after_first_epoch"],
        "samples_per_cpu_s": args.steps * global_batch / cpu_s,
        "note": "samples_per_cpu_s counts every thread's CPU time (compute + loader + cache build); "
                "on an idle machine wall samples/s ~= threads x a single thread's rate at best",
        "wall_s": {"dataset": round(t_data, 2), "train_incl_cache_build": round(t_train, 2)},
        "target": {"samples_per_s": 400, "data_wait_frac": 0.10},
        "machine": machine_info(),
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
