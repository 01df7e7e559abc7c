"""LeRobot 0.6.1 interoperability, both ways, and our metadata through ``lerobot-edit-dataset``.

Makes (or reuses) a Python 3.12 venv with ``lerobot[dataset]==0.6.1`` outside the repository
(``--venv``, default $VLA_LEROBOT_VENV or /work/lerobot-venv; created with the newest pyenv 3.12
interpreter unless ``--python`` names one; torch comes from PyPI as LeRobot pins it, and PyPI has
no CPU-only torch for Linux, so the CUDA build and its nvidia-* wheels come along: see
``venv.size_mb`` in the results). The LeRobot side runs in that venv (benchmarks/_lerobot_side.py,
video backend pyav); everything else runs here. Checks:

1. ours -> LeRobot: a dataset written by ``DatasetWriter`` read with ``LeRobotDataset``: actions,
   states, timestamps and tasks equal to what we wrote, decoded frames equal to our decoder's and
   within the codec's loss of the source frames.
2. LeRobot -> ours: a dataset made with ``LeRobotDataset.create/add_frame/save_episode`` opened
   with ``Dataset.open``: values equal to what LeRobot was given (frames: equal to LeRobot's own
   decoding), and info.json/stats.json keys of ours compared with LeRobot's.
3. ``lerobot-edit-dataset`` delete_episodes and merge on datasets of ours: the embodiment spec (and
   the rest of the vla block but ``source``) is back after ``Dataset.open``; values of the kept or
   merged episodes equal the originals; whether episode provenance survives is reported.

    python benchmarks/lerobot_interop.py [--venv DIR] [--work DIR] [--out benchmarks/results/lerobot_interop.json]

Not part of the test suite (CI must not build that venv); tests/data/test_lerobot_metadata.py
covers the metadata fields and the restore logic without LeRobot.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from vla.data import Dataset, DatasetWriter, EmbodimentSpec

HERE = Path(__file__).resolve().parent
LEROBOT = "lerobot[dataset]==0.6.1"
FPS = 10
H, W = 48, 64
TASKS = ("pick up the cube", "put the cube in the bowl")
FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [5], "names": ["x", "y", "z", "yaw", "gripper"]},
    "action": {"dtype": "float32", "shape": [4], "names": None},   # names come from the spec
    "observation.images.wrist": {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]},
}
CAM = "observation.images.wrist"
SPEC = EmbodimentSpec(name="interop_arm", robot_type="toy_arm", embodiment_type="fixed_base_arm",
                      action_space="ee_delta_position+gripper", action_names=["dx", "dy", "dz", "gripper"],
                      state_names=["x", "y", "z", "yaw", "gripper"], control_rate_hz=FPS, cameras=["wrist"],
                      gripper_dims=[3])
PROV = {"collector_id": "interop-bench", "collection_method": "scripted", "hardware": {"robot": "toy arm"},
        "license": "MIT", "source": {"format": "synthetic"}}


# -- the venv -------------------------------------------------------------------------------------
def _pyenv_312() -> Path:
    found = sorted(Path.home().glob(".pyenv/versions/3.12.*/bin/python"),
                   key=lambda p: [int(x) for x in p.parent.parent.name.split(".")])
    if not found:
        sys.exit("error: no Python 3.12 under ~/.pyenv/versions; pass --python")
    return found[-1]


def _venv_lerobot(py: Path) -> dict[str, Any] | None:
    if not py.exists():
        return None
    r = subprocess.run([str(py), "-c", "import json, sys, lerobot, torch; print(json.dumps({'lerobot': "
                        "lerobot.__version__, 'torch': torch.__version__, 'torch_cuda': torch.version.cuda, "
                        "'python': sys.version.split()[0]}))"], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else None


def _du_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20, 1)


def ensure_venv(venv: Path, python: Path | None) -> dict[str, Any]:
    """Reuse ``venv`` if it has lerobot 0.6.1, else create it (niced: a multi-GB install)."""
    py = venv / "bin" / "python"
    have = _venv_lerobot(py)
    record = venv / "vla_install.json"     # how the venv was made, kept for later reuses
    if have is not None and have["lerobot"] == "0.6.1":
        made = json.loads(record.read_text()) if record.is_file() else None
        return {"path": str(venv), "created": False, **have, "size_mb": _du_mb(venv), "install": made}
    base = python or _pyenv_312()
    t0 = time.perf_counter()
    if not py.exists():
        subprocess.run(["nice", "-n", "10", str(base), "-m", "venv", str(venv)], check=True)
    subprocess.run(["nice", "-n", "10", str(py), "-m", "pip", "install", "-q", LEROBOT], check=True)
    have = _venv_lerobot(py)
    if have is None or have["lerobot"] != "0.6.1":
        sys.exit(f"error: {venv}: lerobot 0.6.1 did not install (found {have})")
    made = {"install_seconds": round(time.perf_counter() - t0, 1), "base_python": str(base),
            "pip": f"pip install {LEROBOT}", "size_mb": _du_mb(venv)}
    record.write_text(json.dumps(made))
    return {"path": str(venv), "created": True, **have, "size_mb": made["size_mb"], "install": made}


def lerobot_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_LEROBOT_HOME=str(work / "hf_lerobot_home"),
               HF_HOME=str(work / "hf_home"), OMP_NUM_THREADS="1")
    return env


def side(venv: Path, work: Path, cmd: str, root: Path, out: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Run the LeRobot side; returns its arrays and meta."""
    subprocess.run([str(venv / "bin" / "python"), str(HERE / "_lerobot_side.py"), cmd, str(root), str(out)],
                   check=True, env=lerobot_env(work))
    with np.load(out / "arrays.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads((out / "meta.json").read_text())


def edit(venv: Path, work: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(venv / "bin" / "lerobot-edit-dataset"), *args], check=True, env=lerobot_env(work),
                   stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - t0, 1)


# -- our side -------------------------------------------------------------------------------------
def _image(t: int, e: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.stack([70 + 110 * yy / H, 90 + 90 * xx / W, np.full((H, W), 110.0 + 25 * e)], axis=-1)
    cx = 8 + (2 * t + 13 * e) % (W - 16)
    img[np.hypot(xx - cx, yy - H / 2) < 6] = (40, 200, 60)
    return img.clip(0, 255).astype(np.uint8)


def write_ours(root: Path, lengths: tuple[int, ...], seed: int) -> list[dict[str, Any]]:
    """A dataset of ours; returns per episode the arrays and task that went in."""
    rng = np.random.default_rng(seed)
    eps = []
    with DatasetWriter(root, fps=FPS, features=FEATURES, robot_type="toy_arm", embodiment=SPEC, overwrite=True,
                       extra_info={"source": {"format": "synthetic", "path": str(root)}}) as w:
        for e, n in enumerate(lengths):
            ep = {"observation.state": rng.normal(size=(n, 5)).astype(np.float32),
                  "action": rng.uniform(-1, 1, size=(n, 4)).astype(np.float32),
                  "observation.images.wrist": np.stack([_image(t, e + seed) for t in range(n)]),
                  "task": TASKS[e % 2]}
            for i in range(n):
                w.add_frame({k: ep[k][i] for k in FEATURES}, task=ep["task"])
            w.save_episode({**PROV, "calibration": {"episode": e, "seed": seed}})
            eps.append(ep)
    return eps


def read_ours(root: Path) -> tuple[Dataset, list[dict[str, Any]]]:
    ds = Dataset.open(root)
    eps = []
    for e in ds.episodes:
        cols = ds.episode_columns(e.index)
        ep = {k: cols[k] for k in ("observation.state", "action", "timestamp", "task_index") if k in cols}
        for cam in ds.camera_keys:
            ep[cam] = ds.episode_images(e.index, cam)
        ep["tasks"] = [ds.tasks[int(i)] for i in np.asarray(cols["task_index"]).reshape(-1)]
        ep["provenance"] = e.provenance
        eps.append(ep)
    return ds, eps


def _frames_cmp(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    mse = float(np.mean(d.astype(np.float64) ** 2))
    return {"max_abs": int(d.max()), "mean_abs": round(float(d.mean()), 4),
            "psnr_db": round(10 * np.log10(255.0**2 / mse), 2) if mse > 0 else None}


def _cat(eps: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.concatenate([np.asarray(e[key]) for e in eps])


# -- the three checks ------------------------------------------------------------------------------
def ours_to_lerobot(venv: Path, work: Path) -> dict[str, Any]:
    root = work / "ours"
    src = write_ours(root, (24, 31, 17), seed=0)
    _, mine = read_ours(root)
    got, meta = side(venv, work, "read", root, work / "ours_read_by_lerobot")
    cam = CAM
    tasks = [e["task"] for e in src for _ in range(len(e["action"]))]
    res = {
        "frames": meta["num_frames"], "episodes": meta["num_episodes"], "lerobot_version": meta["lerobot_version"],
        "action_equal": bool(np.array_equal(got["action"], _cat(src, "action"))),
        "state_equal": bool(np.array_equal(got["observation.state"], _cat(src, "observation.state"))),
        "timestamps_equal": bool(np.array_equal(got["timestamp"].reshape(-1), _cat(mine, "timestamp").reshape(-1))),
        "tasks_equal": meta["tasks"] == tasks,
        "action_names_seen_by_lerobot": meta["feature_names"].get("action"),
        "frames_lerobot_vs_our_decoder": _frames_cmp(got[cam], _cat(mine, cam)),
        "frames_lerobot_vs_source": _frames_cmp(got[cam], _cat(src, cam)),
    }
    res["values_equal"] = all(res[k] for k in ("action_equal", "state_equal", "timestamps_equal", "tasks_equal")) \
        and res["frames_lerobot_vs_our_decoder"]["max_abs"] == 0
    return res


def _meta_diff(ours: Path, theirs: Path) -> dict[str, Any]:
    """Keys LeRobot writes that we do not (and the reverse), and types of the size settings."""
    oi, ti = (json.loads((p / "meta/info.json").read_text()) for p in (ours, theirs))
    os_, ts = (json.loads((p / "meta/stats.json").read_text()) for p in (ours, theirs))
    ov = next(v["info"] for v in oi["features"].values() if v["dtype"] == "video")
    tv = next(v["info"] for v in ti["features"].values() if v["dtype"] == "video")
    sizes = ("chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "fps")
    return {
        "info_keys_only_lerobot": sorted(set(ti) - set(oi)), "info_keys_only_ours": sorted(set(oi) - set(ti)),
        "video_info_keys_only_lerobot": sorted(set(tv) - set(ov)),
        "video_info_keys_only_ours": sorted(set(ov) - set(tv)),
        "stats_features_only_lerobot": sorted(set(ts) - set(os_)),
        "stats_features_only_ours": sorted(set(os_) - set(ts)),
        "stats_keys_differ": {k: sorted(set(ts[k]) ^ set(os_[k])) for k in set(ts) & set(os_)
                              if set(ts[k]) != set(os_[k])},
        "stats_shapes_differ": {f"{k}/{s}": [np.shape(os_[k][s]), np.shape(ts[k][s])] for k in set(ts) & set(os_)
                                for s in set(ts[k]) & set(os_[k]) if np.shape(ts[k][s]) != np.shape(os_[k][s])},
        "size_setting_types": {k: [type(oi[k]).__name__, type(ti[k]).__name__] for k in sizes},
        "lerobot_video_info": tv,
        "ours_video_info": ov,
    }


def lerobot_to_ours(venv: Path, work: Path) -> dict[str, Any]:
    root = work / "theirs"
    shutil.rmtree(root, ignore_errors=True)
    out = work / "theirs_side"
    got, meta = side(venv, work, "write", root, out)
    with np.load(out / "source.npz", allow_pickle=False) as z:
        source = {k: z[k] for k in z.files}
    source_tasks = json.loads((out / "source_tasks.json").read_text())
    ds, mine = read_ours(root)
    cam = CAM
    res = {
        "frames": ds.num_frames, "episodes": ds.num_episodes, "embodiment": ds.embodiment,
        "action_equal": bool(np.array_equal(_cat(mine, "action"), source["action"])),
        "state_equal": bool(np.array_equal(_cat(mine, "observation.state"), source["observation.state"])),
        "timestamps_equal": bool(np.array_equal(_cat(mine, "timestamp").reshape(-1), got["timestamp"].reshape(-1))),
        "tasks_equal": [t for e in mine for t in e["tasks"]] == source_tasks,
        "frames_ours_vs_lerobot_decoder": _frames_cmp(_cat(mine, cam), got[cam]),
        "frames_ours_vs_source": _frames_cmp(_cat(mine, cam), source[cam]),
        "lerobot_codec": json.loads((root / "meta/info.json").read_text())["features"][cam]["info"].get("video.codec"),
        "metadata_vs_ours": _meta_diff(work / "ours", root),
    }
    res["values_equal"] = all(res[k] for k in ("action_equal", "state_equal", "timestamps_equal", "tasks_equal")) \
        and res["frames_ours_vs_lerobot_decoder"]["max_abs"] == 0
    return res


def _kept_equal(mine: list[dict[str, Any]], expect: list[dict[str, Any]]) -> bool:
    if len(mine) != len(expect):
        return False
    return all(np.array_equal(m["action"], e["action"]) and np.array_equal(m["observation.state"],
                                                                          e["observation.state"])
               and set(m["tasks"]) == {e["task"]} for m, e in zip(mine, expect, strict=True))


def _spec_report(root: Path, expect_block: dict[str, Any]) -> dict[str, Any]:
    info = json.loads((root / "meta/info.json").read_text())
    ds = Dataset.open(root)
    block = ds.info.get("vla") or {}
    return {
        "top_level_vla_block_on_disk": "vla" in info,
        "embodiment_equal": ds.embodiment == SPEC.to_dict(),
        "restored_from": block.get("restored_from"),
        "vla_keys_lost": sorted(set(expect_block) - set(block)),
        "action_names_in_features": info["features"]["action"].get("names"),
    }


def _streams(root: Path) -> list[dict[str, Any]]:
    """Codec, pixel format and frame count of each MP4 (shows whether LeRobot re-encoded, and how)."""
    import av

    out = []
    for p in sorted(root.glob("videos/**/*.mp4")):
        with av.open(str(p)) as c:
            s = c.streams.video[0]
            out.append({"file": str(p.relative_to(root)), "codec": s.codec_context.name, "pix_fmt": s.pix_fmt,
                        "frames": s.frames})
    return out


def edits(venv: Path, work: Path) -> dict[str, Any]:
    a, b = work / "edit_a", work / "edit_b"
    src_a = write_ours(a, (20, 26, 14), seed=1)
    src_b = write_ours(b, (18, 23), seed=2)
    block = json.loads((a / "meta/info.json").read_text())["vla"]
    deleted, merged = work / "edit_a_deleted", work / "edit_merged"
    for p in (deleted, merged):
        shutil.rmtree(p, ignore_errors=True)
    t_del = edit(venv, work, "--repo_id", "local/edit_a", "--root", str(a), "--new_repo_id", "local/edit_a_deleted",
                 "--new_root", str(deleted), "--operation.type", "delete_episodes",
                 "--operation.episode_indices", "[1]")
    t_merge = edit(venv, work, "--new_repo_id", "local/edit_merged", "--new_root", str(merged),
                   "--operation.type", "merge", "--operation.repo_ids", "['local/edit_a', 'local/edit_b']",
                   "--operation.roots", f"['{a}', '{b}']")
    _, dec_a = read_ours(a)
    _, dec_b = read_ours(b)
    orig = {"delete_episodes [1]": [dec_a[0], dec_a[2]], "merge a+b": dec_a + dec_b}
    out = {}
    for name, root, expect, secs in (("delete_episodes [1]", deleted, [src_a[0], src_a[2]], t_del),
                                     ("merge a+b", merged, src_a + src_b, t_merge)):
        _, mine = read_ours(root)
        rep = _spec_report(root, block)
        rep.update(seconds=secs, episodes=len(mine), values_equal=_kept_equal(mine, expect),
                   episodes_with_provenance=sum(1 for e in mine if e["provenance"]))
        rep["frames_vs_original_decode"] = _frames_cmp(_cat(mine, CAM), _cat(orig[name], CAM))
        rep["video_streams"] = _streams(root)
        # LeRobot reads its own edit back (the tool loads it as it finishes; checked again here)
        got, _ = side(venv, work, "read", root, work / f"{root.name}_read_by_lerobot")
        rep["lerobot_reads_it"] = bool(np.array_equal(got["action"], _cat(expect, "action")))
        out[name] = rep
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--venv", type=Path, default=Path(os.environ.get("VLA_LEROBOT_VENV", "/work/lerobot-venv")))
    ap.add_argument("--python", type=Path, default=None, help="Python 3.12 for a new venv (default: pyenv's)")
    ap.add_argument("--work", type=Path, default=Path("runs/lerobot_interop"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "lerobot_interop.json")
    args = ap.parse_args()
    venv = args.venv.absolute()
    work = args.work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: dict[str, Any] = {"command": "python " + " ".join(sys.argv), "venv": ensure_venv(venv, args.python)}
    results["notes"] = [
        "LeRobot reads with video_backend='pyav': its default, torchcodec, cannot load without a system FFmpeg "
        "(none here); lerobot-edit-dataset falls back to pyav by itself",
        "frames are compared as decoded bytes; '_vs_source' is the codec's loss (ours: H.264 4:4:4 CRF 18; "
        "LeRobot's default: AV1 CRF 30)",
        "delete_episodes re-encodes a video file that mixes kept and deleted episodes, with the encoder settings "
        "of the feature's info (video_streams shows codec and pix_fmt after the edit)",
    ]
    results["ours_to_lerobot"] = ours_to_lerobot(venv, work)
    results["lerobot_to_ours"] = lerobot_to_ours(venv, work)
    results["lerobot_edit_dataset"] = edits(venv, work)
    e = results["lerobot_edit_dataset"].values()
    results["summary"] = {
        "ours_to_lerobot_values_equal": results["ours_to_lerobot"]["values_equal"],
        "lerobot_to_ours_values_equal": results["lerobot_to_ours"]["values_equal"],
        "spec_survives_delete_and_merge": all(r["embodiment_equal"] for r in e),
        "edited_values_equal": all(r["values_equal"] and r["lerobot_reads_it"] for r in e),
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
