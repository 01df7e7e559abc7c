"""Partial and nonstandard datasets: missing or empty video files are listed and the rest is served;
files that lie elsewhere than info.json says are diagnosed naming both."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.data.helpers import write_dataset
from vla.cli import app
from vla.data import Dataset, DatasetError

G1 = "lerobot_v2.1/unitree_g1_pick_bottle"
VIDEO = "videos/observation.images.front/chunk-000/file-000.mp4"


def _info_json(path: Path) -> dict:
    r = CliRunner().invoke(app, ["info", str(path), "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_v30_from_our_writer_with_videos_removed(tmp_path):
    root = tmp_path / "ds"
    arrays = write_dataset(root, lengths=(12, 17, 9))
    for f in root.rglob("*.mp4"):
        f.unlink()
    s = _info_json(root)
    assert (s["episodes"], s["frames"]) == (3, 38)
    assert s["missing_videos"] == [{"path": VIDEO, "problem": "absent", "cameras": ["observation.images.front"],
                                    "episodes": [0, 1, 2]}]
    ds = Dataset.open(root)
    np.testing.assert_array_equal(ds.episode_columns(1)["action"], arrays[1]["action"])
    assert ds.tasks == ["pick up the cube", "open the drawer"] and ds.stats["action"]["count"][0] == 38
    assert ds.episodes[2].provenance["collector_id"] == "test-suite"
    with pytest.raises(DatasetError, match=r"file-000\.mp4: video file is absent: camera 'observation.images.front' "
                       r"of episode 1 cannot be decoded"):
        ds.episode_images(1, "observation.images.front")
    r = CliRunner().invoke(app, ["info", str(root)])
    assert r.exit_code == 0 and "1 video file(s) cannot be read" in r.output and "file-000.mp4: absent" in r.output


def test_empty_and_lfs_pointer_videos_count_as_missing(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    write_dataset(root, lengths=(5, 6))
    (root / VIDEO).write_bytes(b"")
    monkeypatch.chdir(tmp_path)  # a relative dataset path: the listed file is still relative to the dataset
    assert _info_json(Path("ds"))["missing_videos"][0] | {"episodes": None} == {
        "path": VIDEO, "problem": "empty (0 bytes)", "cameras": ["observation.images.front"], "episodes": None}
    (root / VIDEO).write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 123\n")
    ds = Dataset.open(root)
    assert ds.missing_videos[0].problem.startswith("a Git LFS pointer") and ds.num_frames == 11


def test_one_of_several_video_files_missing(tmp_path):
    from vla.data import DatasetWriter

    from .helpers import FEATURES, PROV, make_episode_arrays

    root = tmp_path / "ds"
    with DatasetWriter(root, fps=10, features=FEATURES, robot_type="toy", video_file_size_mb=1e-6) as w:
        for e, n in enumerate((8, 11, 6, 7)):
            arrays = make_episode_arrays(n, seed=e)
            for i in range(n):
                w.add_frame({k: v[i] for k, v in arrays.items()}, task="t")
            w.save_episode(PROV)
    ds = Dataset.open(root)
    held = {e.videos["observation.images.front"].path: [] for e in ds.episodes}
    for e in ds.episodes:
        held[e.videos["observation.images.front"].path].append(e.index)
    assert len(held) >= 2
    gone, eps = sorted(held.items())[-1]
    gone.unlink()
    ds = Dataset.open(root)
    assert [(m.path, m.episodes, m.cameras) for m in ds.missing_videos] == [(gone, eps, ["observation.images.front"])]
    kept = next(e for e in ds.episodes if e.index not in eps)
    assert ds.episode_images(kept.index, "observation.images.front").shape[0] == kept.length
    with pytest.raises(DatasetError, match=gone.name):
        ds.episode_images(eps[0], "observation.images.front")


def test_v21_g1_layout_without_its_video(real_fixtures, tmp_path):
    """The G1 fixture's meta and data files, copied without the MP4 (the fixture itself is left alone)."""
    root = tmp_path / "g1"
    shutil.copytree(real_fixtures / G1, root, ignore=shutil.ignore_patterns("*.mp4"))
    s = _info_json(root)
    assert (s["episodes"], s["frames"], len(s["missing_episodes"])) == (1, 221, 99)
    assert s["missing_videos"] == [{
        "path": "videos/chunk-000/observation.images.cam_high/episode_000029.mp4", "problem": "absent",
        "cameras": ["observation.images.cam_high"], "episodes": [29]}]
    ds = Dataset.open(root)
    assert ds.episode_columns(29)["observation.state"].shape == (221, 26)
    assert ds.stats["action"]["min"].shape == (26,)
    with pytest.raises(DatasetError, match=r"episode_000029\.mp4: video file is absent"):
        ds.frame(29, 0)


def test_video_folder_other_than_video_path_names_both(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, lengths=(5, 6))
    (root / "videos").rename(root / "video")
    with pytest.raises(DatasetError) as e:
        Dataset.open(root)
    msg = str(e.value)
    tpl = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert f"info.json: field 'video_path' says {tpl}" in msg
    assert "(e.g. videos/observation.images.front/chunk-000/file-000.mp4: not found)" in msg
    assert "files are under video/observation.images.front/chunk-000/" in msg and "--mapping" in msg
    tpl = "video/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    ds = Dataset.open(root, paths={"video_path": tpl})
    assert ds.episode_images(1, "observation.images.front").shape == (6, 64, 80, 3) and not ds.missing_videos


def test_video_folder_named_after_another_camera_key(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, lengths=(5,))
    (root / "videos/observation.images.front").rename(root / "videos/front")
    with pytest.raises(DatasetError, match=r"files are under videos/front/chunk-000/.*folder names camera\(s\) "
                       r"\['front'\], while info.json's cameras are \['observation.images.front'\]"):
        Dataset.open(root)


def test_data_folder_other_than_data_path_names_both(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, lengths=(5, 6))
    (root / "data").rename(root / "parquet")
    with pytest.raises(DatasetError, match=r"field 'data_path' says data/chunk-\{chunk_index:03d\}/.*files are under "
                       r"parquet/chunk-000/: parquet/chunk-000/file-000\.parquet"):
        Dataset.open(root)
    shutil.rmtree(root / "parquet")  # simply missing: the old error
    with pytest.raises(DatasetError, match=r"file-000\.parquet: data file of episode 0 is missing"):
        Dataset.open(root)


def test_renamed_keys_are_reported_by_info(tmp_path):
    from vla.data import DatasetWriter

    from .helpers import PROV, scene_image

    feats = {"state": {"dtype": "float32", "shape": [2], "names": None},
             "actions": {"dtype": "float32", "shape": [2], "names": None},
             "image": {"dtype": "video", "shape": [64, 80, 3], "names": None}}
    with DatasetWriter(tmp_path / "odd", fps=10, features=feats, robot_type="toy") as w:
        for i in range(4):
            w.add_frame({"state": np.zeros(2, np.float32), "actions": np.ones(2, np.float32),
                         "image": scene_image(i)}, task="t")
        w.save_episode(PROV)
    found = {(f["expected"], f["found"]) for f in _info_json(tmp_path / "odd")["nonstandard_features"]}
    assert found == {("action", "actions"), ("observation.state", "state"), ("observation.images.image", "image")}
