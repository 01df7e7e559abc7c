"""The LeRobot 0.6.1 side of benchmarks/lerobot_interop.py; runs in the Python 3.12 venv that has
``lerobot[dataset]==0.6.1`` (not in vla's venv: nothing here imports vla).

    python _lerobot_side.py read ROOT OUT_DIR     # read every frame with LeRobotDataset
    python _lerobot_side.py write ROOT OUT_DIR    # create a dataset with create/add_frame/save_episode

Both write OUT_DIR/arrays.npz (numbers only, loaded without pickle) and OUT_DIR/meta.json (tasks,
versions, what LeRobot reports about the dataset). Frames are stored as uint8 HWC: LeRobot returns
float CHW in [0, 1] = uint8 / 255, so round(x * 255) gives the decoded bytes back exactly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

VIDEO_BACKEND = "pyav"   # torchcodec needs a system FFmpeg, which this machine does not have
REPO_ID = "local/interop"

# what `write` records: 3 episodes, 2 tasks, a 5-d state, a 4-d action, one 48x64 camera
LENGTHS = (21, 34, 15)
TASKS = ("stack the red block", "open the top drawer")
H, W = 48, 64


def _frame_image(t: int, e: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.stack([60 + 120 * yy / H, 80 + 100 * xx / W, np.full((H, W), 120.0 + 20 * e)], axis=-1)
    cx = 8 + (3 * t + 11 * e) % (W - 16)
    img[np.hypot(xx - cx, yy - H / 2) < 6] = (230, 50, 40)
    return img.clip(0, 255).astype(np.uint8)


def write(root: Path, out: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        "observation.state": {"dtype": "float32", "shape": (5,), "names": [f"joint_{i}" for i in range(5)]},
        "action": {"dtype": "float32", "shape": (4,), "names": ["dx", "dy", "dz", "gripper"]},
        "observation.images.wrist": {"dtype": "video", "shape": (H, W, 3), "names": ["height", "width", "channels"]},
    }
    ds = LeRobotDataset.create(REPO_ID, fps=15, features=features, root=root, robot_type="toy_arm",
                               use_videos=True, video_backend=VIDEO_BACKEND)
    rng = np.random.default_rng(7)
    cols: dict[str, list[np.ndarray]] = {"observation.state": [], "action": [], "observation.images.wrist": []}
    tasks = []
    for e, n in enumerate(LENGTHS):
        for t in range(n):
            frame = {"observation.state": rng.normal(size=5).astype(np.float32),
                     "action": rng.uniform(-1, 1, size=4).astype(np.float32),
                     "observation.images.wrist": _frame_image(t, e), "task": TASKS[e % 2]}
            for k in cols:
                cols[k].append(frame[k])
            tasks.append(frame["task"])
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    np.savez(out / "source.npz", **{k: np.stack(v) for k, v in cols.items()})
    (out / "source_tasks.json").write_text(json.dumps(tasks))
    read(root, out)


def read(root: Path, out: Path) -> None:
    import lerobot
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(REPO_ID, root=root, video_backend=VIDEO_BACKEND)
    cams = list(ds.meta.video_keys) + list(ds.meta.image_keys)
    keys = [k for k in ("observation.state", "action") if k in ds.meta.features]
    cols: dict[str, list[np.ndarray]] = {k: [] for k in keys + cams + ["timestamp", "episode_index", "index"]}
    tasks = []
    for i in range(len(ds)):
        item = ds[i]
        for k in keys + ["timestamp", "episode_index", "index"]:
            cols[k].append(np.asarray(item[k]))
        for k in cams:
            chw = np.asarray(item[k], dtype=np.float32)
            cols[k].append(np.round(chw.transpose(1, 2, 0) * 255.0).clip(0, 255).astype(np.uint8))
        tasks.append(item["task"])
    np.savez(out / "arrays.npz", **{k: np.stack(v) for k, v in cols.items()})
    meta = {"lerobot_version": lerobot.__version__, "num_frames": len(ds), "num_episodes": ds.meta.total_episodes,
            "fps": ds.meta.fps, "robot_type": ds.meta.robot_type, "cameras": cams, "tasks": tasks,
            "video_backend": VIDEO_BACKEND,
            "feature_names": {k: ds.meta.features[k].get("names") for k in keys}}
    (out / "meta.json").write_text(json.dumps(meta))


if __name__ == "__main__":
    cmd, root_arg, out_arg = sys.argv[1:4]
    out_dir = Path(out_arg)
    out_dir.mkdir(parents=True, exist_ok=True)
    {"read": read, "write": write}[cmd](Path(root_arg), out_dir)
