"""LeRobot -> LeRobot conversion: video stream copy vs re-encode (time, frame-exactness, size) as JSON.

Sources:

- the G1 fixture (shared/fixtures/real, LeRobot v2.1 written by another project: AV1 640x480, 30 fps,
  one present episode of 221 frames);
- a v3.0 dataset written by our writer (H.264 4:4:4 with B-frames, many episodes per MP4 file,
  episodes starting mid-GOP): ``--episodes`` episodes of ``--frames`` frames, 160x128 pixels;
- any ``--source PATH`` given (e.g. a dataset LeRobot itself wrote).

Each source is converted twice, ``video_copy=False`` (decode + re-encode, the old behaviour) and
``video_copy=None`` (stream copy), ``--repeats`` times each (the best time is reported). Then every
frame of every episode of both outputs is decoded and compared with the source's decoded frames.

    nice python benchmarks/stream_copy.py --out benchmarks/results/stream_copy.json
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
G1 = REPO.parent / "shared/fixtures/real/lerobot_v2.1/unitree_g1_pick_bottle"
PROV = {"collector_id": "benchmark", "collection_method": "teleoperation"}


def scene(t: int, seed: int, h: int = 128, w: int = 160) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([90 + 40 * yy / h, 110 + 30 * xx / w, 140 - 20 * yy / h], -1)
    cx = 10 + (t * 2 + seed * 7) % (w - 20)
    blob = np.exp(-((xx - cx) ** 2 + (yy - h / 2) ** 2) / 30.0)[..., None]
    img = img * (1 - blob) + blob * np.array([220, 40, 40])
    return np.clip(img, 0, 255).astype(np.uint8)


def make_ours(root: Path, episodes: int, frames: int) -> None:
    from vla.data import DatasetWriter

    feats = {"observation.state": {"dtype": "float32", "shape": [6], "names": None},
             "action": {"dtype": "float32", "shape": [6], "names": None},
             "observation.images.front": {"dtype": "video", "shape": [128, 160, 3], "names": None}}
    rng = np.random.default_rng(0)
    with DatasetWriter(root, fps=30, features=feats, robot_type="bench_arm") as w:
        for e in range(episodes):
            for i in range(frames):
                w.add_frame({"observation.state": rng.normal(size=6).astype(np.float32),
                             "action": rng.normal(size=6).astype(np.float32),
                             "observation.images.front": scene(i, e)}, task=f"task {e % 3}")
            w.save_episode(PROV)


def compare(src: Path, out: Path) -> dict:
    """Decode every camera frame of both datasets; max abs pixel error and share of identical frames."""
    from vla.data import Dataset

    a, b = Dataset.open(src), Dataset.open(out)
    worst, same, total = 0, 0, 0
    for ea, eb in zip(a.episodes, b.episodes, strict=True):
        for key in a.camera_keys:
            x = a.episode_images(ea.index, key).astype(np.int16)
            y = b.episode_images(eb.index, key).astype(np.int16)
            d = np.abs(x - y).reshape(len(x), -1).max(axis=1)
            worst = max(worst, int(d.max()))
            same += int((d == 0).sum())
            total += len(d)
    return {"frames_compared": total, "frames_identical": same, "max_abs_pixel_error": worst}


def size_mb(root: Path) -> float:
    return round(sum(p.stat().st_size for p in (root / "videos").rglob("*.mp4")) / 1e6, 3)


def run_source(name: str, src: Path, work: Path, repeats: int) -> dict:
    from vla.data import Dataset
    from vla.data.formats.convert import convert

    ds = Dataset.open(src)
    res: dict = {"source": str(src), "version": ds.version, "episodes": ds.num_episodes, "frames": ds.num_frames,
                 "cameras": ds.camera_keys, "fps": ds.fps}
    for mode, copy in (("reencode", False), ("copy", None)):
        times = []
        for r in range(repeats):
            out = work / f"{name}_{mode}_{r}"
            t0 = time.perf_counter()
            report = convert(src, out, provenance=PROV, video_copy=copy)
            times.append(time.perf_counter() - t0)
            if r < repeats - 1:
                shutil.rmtree(out)
        res[mode] = {"seconds_best": round(min(times), 3), "seconds_all": [round(t, 3) for t in times],
                     "copied_videos": report.copied_videos, "video_mb": size_mb(out), **compare(src, out)}
        info = Dataset.open(out).info["features"][ds.camera_keys[0]]["info"]
        res[mode]["codec"] = info["video.codec"]
    res["source_video_mb"] = size_mb(src)
    res["speedup"] = round(res["reencode"]["seconds_best"] / res["copy"]["seconds_best"], 2)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/stream_copy.json")
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--source", type=Path, action="append", default=[], help="Another LeRobot dataset to measure.")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ours = work / "ours_src"
        t0 = time.perf_counter()
        make_ours(ours, args.episodes, args.frames)
        print(f"made our v3.0 source in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        sources = {"g1_fixture_lerobot_v21_av1": G1, "ours_v30_h264": ours}
        sources.update({p.name: p for p in args.source})
        for name, src in sources.items():
            print(f"{name} ...", file=sys.stderr)
            results[name] = run_source(name, src, work, args.repeats)
    write_result(args.out, {
        "benchmark": "stream_copy",
        "command": " ".join(["python", "benchmarks/stream_copy.py"] + sys.argv[1:]),
        "what": "LeRobot -> LeRobot conversion time (whole conversion, best of repeats), video re-encode vs "
                "stream copy; frames of both outputs decoded and compared with the source's",
        "machine": machine_info(),
        "results": results,
    })


if __name__ == "__main__":
    main()
