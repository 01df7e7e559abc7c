"""Interrupted writers leave nothing that opens; broken datasets raise errors naming the file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.data.helpers import write_dataset
from vla.data import Dataset, DatasetError

REPO = Path(__file__).resolve().parents[2]

KILLED_WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {repo!r})
    from tests.data.helpers import FEATURES, PROV, scene_image
    from vla.data import DatasetWriter
    w = DatasetWriter({root!r}, fps=10, features=FEATURES, robot_type="toy", overwrite=True)
    for e in range(2):
        for i in range(8):
            w.add_frame({{"observation.state": np.zeros(4, np.float32), "action": np.zeros(4, np.float32),
                         "observation.images.front": scene_image(i)}}, task="t")
        w.save_episode(PROV)
    for i in range(3):   # mid-episode: frames buffered, never saved
        w.add_frame({{"observation.state": np.zeros(4, np.float32), "action": np.zeros(4, np.float32),
                     "observation.images.front": scene_image(i)}}, task="t")
    print("READY", flush=True)
    time.sleep(60)
""")


def _run_and_kill(root: Path) -> None:
    code = KILLED_WRITER.format(repo=str(REPO), root=str(root))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    try:
        deadline = time.time() + 60
        line = ""
        while time.time() < deadline and "READY" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "READY" in line, "writer subprocess did not reach the middle of an episode"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)


def test_killed_writer_leaves_nothing_that_opens(tmp_path):
    root = tmp_path / "ds"
    _run_and_kill(root)
    with pytest.raises(DatasetError, match="no dataset here"):
        Dataset.open(root)
    leftovers = list(tmp_path.glob(".ds.vla-tmp-*"))
    assert leftovers, "the half-built dataset should stay in its hidden temp folder"
    with pytest.raises(DatasetError):
        Dataset.open(leftovers[0])
    # the next writer for that target removes the dead writer's temp folder
    write_dataset(root, lengths=(4,))
    assert not list(tmp_path.glob(".ds.vla-tmp-*"))
    assert Dataset.open(root).num_frames == 4


def test_killed_overwrite_keeps_previous_complete_dataset(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, lengths=(5, 6))
    _run_and_kill(root)
    ds = Dataset.open(root)
    assert ds.num_episodes == 2 and ds.num_frames == 11


def test_writer_exception_in_context_leaves_nothing(tmp_path):
    root = tmp_path / "ds"
    with pytest.raises(RuntimeError):
        with __import__("vla.data", fromlist=["DatasetWriter"]).DatasetWriter(
            root, fps=10, features={"a": {"dtype": "float32", "shape": [2]}}, robot_type="x"
        ) as w:
            w.add_frame({"a": [1.0, 2.0]}, task="t")
            w.save_episode({"collector_id": "me", "collection_method": "scripted"})
            raise RuntimeError("boom")
    assert not root.exists() and not list(tmp_path.iterdir())


@pytest.fixture
def good(tmp_path) -> Path:
    write_dataset(tmp_path / "ds")
    return tmp_path / "ds"


def test_missing_info_json(good):
    (good / "meta/info.json").unlink()
    with pytest.raises(DatasetError, match=r"info\.json: file is missing"):
        Dataset.open(good)


def test_missing_data_file(good):
    (good / "data/chunk-000/file-000.parquet").unlink()
    with pytest.raises(DatasetError, match=r"file-000\.parquet: data file of episode 0 is missing"):
        Dataset.open(good)


def test_missing_video_file_opens_partially_and_decoding_names_it(good):
    shutil.rmtree(good / "videos")
    ds = Dataset.open(good)  # a partial copy: low-dim data is served, the video is listed
    assert [m.path.name for m in ds.missing_videos] == ["file-000.mp4"]
    assert ds.episode_columns(2)["action"].shape == (9, 4)
    with pytest.raises(DatasetError, match=r"file-000\.mp4: video file is absent: camera 'observation.images.front' "
                       r"of episode 2"):
        ds.episode_images(2, "observation.images.front")
    with pytest.raises(DatasetError, match=r"file-000\.mp4: video file is absent"):
        ds.frame(0, 3)


def test_truncated_parquet(good):
    p = good / "data/chunk-000/file-000.parquet"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"file-000\.parquet: cannot read parquet"):
        Dataset.open(good)


def test_truncated_episodes_table(good):
    p = good / "meta/episodes/chunk-000/file-000.parquet"
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(DatasetError, match=r"episodes/chunk-000/file-000\.parquet: cannot read parquet"):
        Dataset.open(good)


def test_video_frame_count_disagrees_with_table(good, tmp_path):
    other = tmp_path / "short"
    write_dataset(other, lengths=(12, 17))  # 9 frames fewer than `good`
    vid = "videos/observation.images.front/chunk-000/file-000.mp4"
    shutil.copy(other / vid, good / vid)
    with pytest.raises(DatasetError, match=r"file-000\.mp4: video holds 29 frames but the episodes table says 38"):
        Dataset.open(good)


def test_row_count_disagrees_with_episodes_table(good):
    info = json.loads((good / "meta/info.json").read_text())
    assert info["total_frames"] == 38
    import pyarrow.parquet as pq

    p = good / "data/chunk-000/file-000.parquet"
    t = pq.read_table(p)
    pq.write_table(t.slice(0, 30), p)
    with pytest.raises(DatasetError, match=r"holds 30 rows but the episodes table says 38"):
        Dataset.open(good)


def test_invalid_info_json(good):
    (good / "meta/info.json").write_text("{not json")
    with pytest.raises(DatasetError, match="invalid JSON"):
        Dataset.open(good)


def test_cli_info_reports_error_cleanly(good):
    (good / "meta/info.json").unlink()
    r = subprocess.run([sys.executable, "-m", "vla.cli", "info", str(good)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "info.json: file is missing" in r.stderr and "Traceback" not in r.stderr
