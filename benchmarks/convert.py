"""Conversion throughput: episodes/s and frames/s for RLDS and MCAP inputs, peak memory (JSON).

Generates the inputs itself (``--episodes`` small episodes, default 1000):

- RLDS: 4 TFRecord shards, each episode 10 steps of 7-D state/action, a 32x32 JPEG camera, language;
- MCAP: one ROS 2 file per episode, 1 s of JointState at 100 Hz, CompressedImage (32x32 JPEG) at 30 Hz
  and Float64MultiArray commands at 50 Hz, aligned to 10 Hz (11 frames).

Each conversion runs in a fresh child process (``--run``) so its peak RSS (ru_maxrss of the process
and of its workers) is its own; RSS is also sampled after 10% and 100% of the episodes to show that
memory stays bounded as episodes stream through.

    nice python benchmarks/convert.py --out runs/bench_convert.json [--episodes 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
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
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def run_one(src: Path, dst: Path, fmt: str, workers: int, total: int) -> dict:
    """Child-process side: one conversion, timed, with memory samples."""
    from vla.data.formats.convert import convert

    base = _rss_mb()
    samples: dict[str, float] = {}

    def progress(episodes: int, frames: int) -> None:
        if episodes == max(1, total // 10):
            samples["rss_mb_at_10pct"] = round(_rss_mb(), 1)

    t = time.perf_counter()
    r = convert(src, dst, format=fmt, mapping=MCAP_MAPPING if fmt == "mcap" else None, provenance=PROV,
                workers=workers, progress=progress, fps=10 if fmt == "rlds" else None)
    dt = time.perf_counter() - t
    samples["rss_mb_at_100pct"] = round(_rss_mb(), 1)
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"format": fmt, "workers": workers, "episodes": r.episodes, "frames": r.frames, "seconds": round(dt, 2),
            "episodes_per_s": round(r.episodes / dt, 1), "frames_per_s": round(r.frames / dt, 1),
            "rss_mb_after_imports": round(base, 1), **samples, "peak_rss_mb": round(self_peak, 1),
            "peak_rss_mb_worker": round(child_peak, 1) if workers > 1 else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--run", nargs=4, metavar=("SRC", "DST", "FORMAT", "TOTAL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        src, dst, fmt, total = args.run
        print(json.dumps(run_one(Path(src), Path(dst), fmt, args.workers, int(total))))
        return
    results = {"episodes": args.episodes, "workers": args.workers, "cpus": os.cpu_count(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="vla-bench-convert-") as tmp:
        tmp = Path(tmp)
        for fmt, make in (("rlds", make_rlds), ("mcap", make_mcap)):
            t = time.perf_counter()
            make(tmp / f"{fmt}_src", args.episodes)
            gen = time.perf_counter() - t
            for workers in sorted({1, args.workers}):
                out = subprocess.run([sys.executable, __file__, "--workers", str(workers), "--run",
                                      str(tmp / f"{fmt}_src"), str(tmp / f"{fmt}_out_{workers}"), fmt,
                                      str(args.episodes)], capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    raise SystemExit(f"{fmt} conversion failed:\n{out.stderr[-3000:]}")
                run = json.loads(out.stdout.strip().splitlines()[-1])
                run["generate_seconds"] = round(gen, 1)
                results["runs"].append(run)
                print(json.dumps(run), file=sys.stderr)
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
