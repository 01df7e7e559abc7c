"""Conversion throughput (episodes/s, frames/s) for RLDS and MCAP inputs, and peak memory at several sizes (JSON).

Generates the inputs itself, ``--episodes`` small episodes for each size given (default 1000 and 10000):

- RLDS: 4 TFRecord shards, each episode 10 steps of 7-D state/action, a 32x32 JPEG camera, language;
- MCAP: one ROS 2 file per episode, 1 s of JointState at 100 Hz, CompressedImage (32x32 JPEG) at 30 Hz
  and Float64MultiArray commands at 50 Hz, aligned to 10 Hz (11 frames).

Runs per size: each format with 1 and ``--workers`` decoding processes, and RLDS once more through the
standardize path (``--normalize quantile --action-mode delta``: a streaming statistics pass, then the
write). Each conversion runs in a fresh child process (``--run``) so its peak RSS is its own (VmHWM of
the process; ru_maxrss of its workers); RSS is also sampled after 10% and 100% of the episodes.
``rss_scaling`` compares each run's peak RSS at the largest size with the smallest: memory that does
not grow with the number of episodes gives a ratio near 1 (``within_10pct``).

    nice python benchmarks/convert.py --out benchmarks/results/convert.json [--episodes 1000 10000] [--workers 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROV = {"collector_id": "benchmark", "collection_method": "scripted"}
STEPS = 10


def _jpeg(i: int) -> bytes:
    from PIL import Image

    img = np.zeros((32, 32, 3), np.uint8)
    img[..., 0] = (i * 7) % 256
    img[8:24, 8:24, 1] = 200
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_rlds(root: Path, episodes: int, shards: int = 4) -> int:
    from vla.data.formats.example import make_example
    from vla.data.formats.tfrecord import write_records

    def t(shape: list[int]) -> dict:
        return {"tensor": {"shape": {"dimensions": [str(d) for d in shape]}, "dtype": "float32", "encoding": "none"}}

    step = {"featuresDict": {"features": {
        "action": t([7]),
        "language_instruction": {"text": {}},
        "observation": {"featuresDict": {"features": {
            "state": t([7]),
            "image": {"image": {"shape": {"dimensions": ["32", "32", "3"]}, "dtype": "uint8",
                                "encodingFormat": "jpeg"}}}}},
    }}}
    root.mkdir(parents=True)
    (root / "features.json").write_text(json.dumps({"featuresDict": {"features": {
        "steps": {"sequence": {"feature": step, "length": "-1"}}}}}))
    per = [episodes // shards + (1 if i < episodes % shards else 0) for i in range(shards)]
    (root / "dataset_info.json").write_text(json.dumps({"name": "bench_rlds", "version": "1.0.0", "splits": [
        {"name": "train", "shardLengths": [str(n) for n in per]}]}))
    rng = np.random.default_rng(0)
    frames = [_jpeg(i) for i in range(STEPS)]
    for s, n in enumerate(per):
        recs = (make_example({
            "steps/action": rng.normal(size=(STEPS, 7)).astype(np.float32),
            "steps/observation/state": rng.normal(size=(STEPS, 7)).astype(np.float32),
            "steps/observation/image": frames,
            "steps/language_instruction": [f"task {e % 10}"] * STEPS,
        }) for e in range(n))
        write_records(root / f"bench_rlds-train.tfrecord-{s:05d}-of-{shards:05d}", recs)
    return episodes * STEPS


def make_mcap(root: Path, episodes: int) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data" / "formats"))
    from mcap_ros2.writer import Writer
    from synth import COMPRESSED_IMAGE, FLOAT64_MULTI_ARRAY, JOINT_STATE  # test writers' message definitions

    root.mkdir(parents=True)
    frames = [_jpeg(i) for i in range(31)]
    t0 = 1_700_000_000 * 10**9
    for e in range(episodes):
        with open(root / f"episode_{e:05d}.mcap", "wb") as f:
            w = Writer(f)
            js = w.register_msgdef("sensor_msgs/msg/JointState", JOINT_STATE)
            ci = w.register_msgdef("sensor_msgs/msg/CompressedImage", COMPRESSED_IMAGE)
            cmd = w.register_msgdef("std_msgs/msg/Float64MultiArray", FLOAT64_MULTI_ARRAY)
            events = [(i * 10_000_000, 0, i) for i in range(101)] + [(i * 20_000_000, 1, i) for i in range(51)] + \
                [(round(i * 1e9 / 30), 2, i) for i in range(31)]
            for ns, kind, i in sorted(events):
                ns += t0
                stamp = {"sec": ns // 10**9, "nanosec": ns % 10**9}
                if kind == 0:
                    w.write_message("/joint_states", js, {"header": {"stamp": stamp, "frame_id": ""},
                                                          "name": [], "position": [i * 0.01] * 7,
                                                          "velocity": [], "effort": []}, log_time=ns)
                elif kind == 1:
                    w.write_message("/cmd", cmd, {"layout": {"dim": [], "data_offset": 0}, "data": [i * 0.02] * 7},
                                    log_time=ns)
                else:
                    w.write_message("/cam", ci, {"header": {"stamp": stamp, "frame_id": "c"}, "format": "jpeg",
                                                 "data": frames[i]}, log_time=ns)
            w.add_metadata("episode", {"instruction": f"task {e % 10}"})
            w.finish()
    return episodes * 11


MCAP_MAPPING = {"fps": 10, "features": {
    "observation.state": {"topic": "/joint_states", "field": "position"},
    "observation.images.cam": {"topic": "/cam"},
    "action": {"topic": "/cmd", "field": "data"}}}


def _rss_mb() -> float:
    """Current RSS in MiB (like every *_mb figure here)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    """This process's peak RSS since it started (VmHWM: unlike ru_maxrss it does not carry over, through
    fork + exec, the RSS of the process that started it)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_one(src: Path, dst: Path, fmt: str, workers: int, total: int, standardize: bool = False) -> dict:
    """Child-process side: one conversion, timed, with memory samples."""
    from vla.data.formats.convert import convert
    from vla.data.standardize import StandardizeConfig

    base = _rss_mb()
    samples: dict[str, float] = {}

    def progress(episodes: int, frames: int) -> None:
        if episodes == max(1, total // 10):
            samples["rss_mb_at_10pct"] = round(_rss_mb(), 1)

    t = time.perf_counter()
    cfg = StandardizeConfig(normalize="quantile", action_mode="delta") if standardize else None
    r = convert(src, dst, format=fmt, mapping=MCAP_MAPPING if fmt == "mcap" else None, provenance=PROV,
                workers=workers, progress=progress, fps=10 if fmt == "rlds" else None, standardize=cfg)
    dt = time.perf_counter() - t
    samples["rss_mb_at_100pct"] = round(_rss_mb(), 1)
    self_peak = _peak_rss_mb()
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"format": fmt, "standardize": "quantile+delta" if standardize else None, "workers": workers,
            "episodes": r.episodes, "frames": r.frames, "seconds": round(dt, 2),
            "episodes_per_s": round(r.episodes / dt, 1), "frames_per_s": round(r.frames / dt, 1),
            "rss_mb_after_imports": round(base, 1), **samples, "peak_rss_mb": round(self_peak, 1),
            "peak_rss_mb_worker": round(child_peak, 1) if workers > 1 else None}


def _convert_in_child(src: Path, dst: Path, fmt: str, workers: int, total: int, standardize: bool) -> dict:
    cmd = [sys.executable, __file__, "--workers", str(workers), "--run", str(src), str(dst), fmt, str(total)]
    out = subprocess.run(cmd + (["--standardize"] if standardize else []), capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"{fmt} conversion failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def rss_scaling(runs: list[dict]) -> list[dict]:
    """Peak RSS of each configuration at the largest size over the smallest."""
    out = []
    configs = dict.fromkeys((r["format"], r["standardize"], r["workers"]) for r in runs)
    for fmt, std, workers in configs:
        same = sorted((r for r in runs if (r["format"], r["standardize"], r["workers"]) == (fmt, std, workers)),
                      key=lambda r: r["episodes"])
        lo, hi = same[0], same[-1]
        row = {"format": fmt, "standardize": std, "workers": workers, "episodes": [lo["episodes"], hi["episodes"]],
               "peak_rss_mb": [lo["peak_rss_mb"], hi["peak_rss_mb"]],
               "ratio": round(hi["peak_rss_mb"] / lo["peak_rss_mb"], 3)}
        if workers > 1:
            row["peak_rss_mb_worker"] = [lo["peak_rss_mb_worker"], hi["peak_rss_mb_worker"]]
            row["ratio_worker"] = round(hi["peak_rss_mb_worker"] / lo["peak_rss_mb_worker"], 3)
        row["within_10pct"] = all(abs(row[k] - 1) <= 0.10 for k in ("ratio", "ratio_worker") if k in row)
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--run", nargs=4, metavar=("SRC", "DST", "FORMAT", "TOTAL"), help=argparse.SUPPRESS)
    ap.add_argument("--standardize", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        src, dst, fmt, total = args.run
        print(json.dumps(run_one(Path(src), Path(dst), fmt, args.workers, int(total), args.standardize)))
        return
    from _machine import machine_info

    results = {"episodes": args.episodes, "workers": args.workers, "machine": machine_info(), "runs": []}
    for size in args.episodes:
        with tempfile.TemporaryDirectory(prefix="vla-bench-convert-") as tmp:
            tmp = Path(tmp)
            for fmt, make in (("rlds", make_rlds), ("mcap", make_mcap)):
                t = time.perf_counter()
                make(tmp / f"{fmt}_src", size)
                gen = time.perf_counter() - t
                plan = [(w, False) for w in sorted({1, args.workers})]
                if fmt == "rlds":
                    plan.append((args.workers, True))
                for workers, std in plan:
                    dst = tmp / f"{fmt}_out_{workers}{'_std' if std else ''}"
                    run = _convert_in_child(tmp / f"{fmt}_src", dst, fmt, workers, size, std)
                    run["generate_seconds"] = round(gen, 1)
                    results["runs"].append(run)
                    print(json.dumps(run), file=sys.stderr)
                    shutil.rmtree(dst, ignore_errors=True)
                shutil.rmtree(tmp / f"{fmt}_src", ignore_errors=True)
    results["rss_scaling"] = rss_scaling(results["runs"])
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
