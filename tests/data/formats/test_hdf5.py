"""HDF5: the real robosuite demo, robomimic and ALOHA files written with h5py, corrupted inputs."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from vla.data import Dataset
from vla.data.formats.convert import convert, detect_format
from vla.data.formats.episode import ConversionError

from .synth import write_aloha, write_robomimic

ROBOSUITE = "hdf5/robosuite_lift_panda_demo.hdf5"


def test_robosuite_fixture(real_fixtures, tmp_path, prov_file):
    src = real_fixtures / ROBOSUITE
    assert detect_format(src) == "hdf5"
    r = convert(src, tmp_path / "out", provenance=prov_file)
    ds = Dataset.open(tmp_path / "out")
    assert (r.episodes, ds.num_frames, ds.fps) == (1, 412, 20)
    cols = ds.episode_columns(0)
    with h5py.File(src) as f:
        np.testing.assert_array_equal(cols["action"], f["data/demo_1/actions"][()].astype(np.float32))
        np.testing.assert_array_equal(cols["observation.state"], f["data/demo_1/states"][()].astype(np.float32))
        np.testing.assert_array_equal(cols["observation.joint_torques"],
                                      f["data/demo_1/joint_torques"][()].astype(np.float32))
    assert ds.features["action"]["shape"] == [7]
    prov = ds.episodes[0].provenance
    assert prov["source"]["layout"] == "robosuite" and prov["hardware"]["robot"] == "Panda"
    assert ds.tasks == ["Lift"]


def test_robomimic_sorted_and_filtered(tmp_path, prov_file):
    demos = write_robomimic(tmp_path / "rm.hdf5", {"demo_10": 4, "demo_2": 3, "demo_1": 5},
                            mask={"valid": ["demo_10", "demo_2"]})
    convert(tmp_path / "rm.hdf5", tmp_path / "all", provenance=prov_file, use_videos=False)
    ds = Dataset.open(tmp_path / "all")
    assert [e.length for e in ds.episodes] == [5, 3, 4]  # demo_1, demo_2, demo_10
    cols = ds.episode_columns(2)
    d = demos["demo_10"]
    np.testing.assert_array_equal(cols["action"], d["actions"].astype(np.float32))
    want_state = np.concatenate([d["obs/robot0_eef_pos"], d["obs/robot0_gripper_qpos"]], axis=1)
    np.testing.assert_array_equal(cols["observation.state"], want_state.astype(np.float32))
    assert ds.features["observation.state"]["names"][:4] == ["robot0_eef_pos_0", "robot0_eef_pos_1",
                                                             "robot0_eef_pos_2", "robot0_gripper_qpos_0"]
    assert cols["next.done"][-1] and not cols["next.done"][0]
    np.testing.assert_array_equal(ds.episode_images(2, "observation.images.agentview"), d["obs/agentview_image"])
    convert(tmp_path / "rm.hdf5", tmp_path / "valid", provenance=prov_file, mapping={"filter_key": "valid"},
            use_videos=False)
    assert [e.length for e in Dataset.open(tmp_path / "valid").episodes] == [3, 4]


@pytest.mark.parametrize("compressed", [False, True])
def test_aloha_folder(tmp_path, prov_file, compressed):
    src = tmp_path / "aloha"
    src.mkdir()
    written = [write_aloha(src / f"episode_{i}.hdf5", n=8 + i, compressed=compressed, seed=i) for i in (0, 1, 2, 10)]
    convert(src, tmp_path / "out", provenance=prov_file, use_videos=False)
    ds = Dataset.open(tmp_path / "out")
    assert ds.fps == 50 and [e.length for e in ds.episodes] == [8, 9, 10, 18]
    for e, w in enumerate(written):
        cols = ds.episode_columns(e)
        np.testing.assert_array_equal(cols["observation.state"], w["qpos"].astype(np.float32))
        np.testing.assert_array_equal(cols["action"], w["action"].astype(np.float32))
        img = ds.episode_images(e, "observation.images.cam_left_wrist")
        tol = 3 if compressed else 0  # JPEG of flat colours
        assert np.abs(img.astype(int) - w["cams"]["cam_left_wrist"].astype(int)).max() <= tol


def test_missing_key_and_truncated(tmp_path, prov_file, nothing_at):
    write_aloha(tmp_path / "a.hdf5", compressed=True)
    with h5py.File(tmp_path / "a.hdf5", "a") as f:
        del f["compress_len"]
    with pytest.raises(ConversionError, match=r"a.hdf5: .*'/compress_len' is missing"):
        convert(tmp_path / "a.hdf5", tmp_path / "out", provenance=prov_file)
    nothing_at(tmp_path / "out")
    write_robomimic(tmp_path / "rm.hdf5", {"demo_1": 3})
    with h5py.File(tmp_path / "rm.hdf5", "a") as f:
        del f["data/demo_1/actions"]
    with pytest.raises(ConversionError, match=r"rm.hdf5: missing key '/data/demo_1/actions' \(expected actions"):
        convert(tmp_path / "rm.hdf5", tmp_path / "out", provenance=prov_file)
    nothing_at(tmp_path / "out")
    write_robomimic(tmp_path / "big.hdf5", {"demo_1": 200, "demo_2": 200})
    raw = (tmp_path / "big.hdf5").read_bytes()
    (tmp_path / "trunc.hdf5").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ConversionError, match="trunc.hdf5: .*(truncated|corrupted)"):
        convert(tmp_path / "trunc.hdf5", tmp_path / "out", provenance=prov_file)
    nothing_at(tmp_path / "out")
