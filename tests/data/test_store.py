"""Store round trips: low-dim values exact, images within codec loss, provenance, stats, layout."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.data.helpers import FEATURES, PROV, scene_image, write_dataset
from vla.data import Dataset, DatasetError, DatasetWriter, ProvenanceError
from vla.data.layout import QUANTILES


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_round_trip_low_dim_exact_and_video_psnr(tmp_path):
    src = write_dataset(tmp_path / "ds")
    ds = Dataset.open(tmp_path / "ds")
    assert ds.num_episodes == 3 and ds.num_frames == 12 + 17 + 9
    assert ds.version == "v3.0" and ds.fps == 10.0 and ds.robot_type == "toy_arm"
    for e, arrays in enumerate(src):
        cols = ds.episode_columns(e)
        np.testing.assert_array_equal(cols["observation.state"], arrays["observation.state"])
        np.testing.assert_array_equal(cols["action"], arrays["action"])
        np.testing.assert_array_equal(cols["frame_index"], np.arange(len(arrays["action"])))
        assert (cols["episode_index"] == e).all()
        imgs = ds.episode_images(e, "observation.images.front")
        assert imgs.shape == arrays["observation.images.front"].shape
        assert psnr(imgs, arrays["observation.images.front"]) >= 35.0
    # global index is contiguous across episodes
    idx = np.concatenate([ds.episode_columns(e)["index"] for e in range(3)])
    np.testing.assert_array_equal(idx, np.arange(ds.num_frames))


def test_random_access_frame_matches_episode_decode(tmp_path):
    write_dataset(tmp_path / "ds")
    ds = Dataset.open(tmp_path / "ds")
    whole = ds.episode_images(1, "observation.images.front")
    for i in (0, 7, 16):
        f = ds.frame(1, i)
        np.testing.assert_array_equal(f["observation.images.front"], whole[i])
        np.testing.assert_array_equal(f["action"], ds.episode_columns(1)["action"][i])
    with pytest.raises(DatasetError, match="frame 17"):
        ds.frame(1, 17)


def test_png_images_are_lossless(tmp_path):
    src = write_dataset(tmp_path / "ds", use_videos=False)
    ds = Dataset.open(tmp_path / "ds")
    assert ds.features["observation.images.front"]["dtype"] == "image"
    assert not (tmp_path / "ds" / "videos").exists()
    np.testing.assert_array_equal(ds.episode_images(2, "observation.images.front"),
                                  src[2]["observation.images.front"])


def test_layout_matches_lerobot_v30(tmp_path):
    write_dataset(tmp_path / "ds")
    root = tmp_path / "ds"
    for rel in ("meta/info.json", "meta/stats.json", "meta/tasks.parquet",
                "meta/episodes/chunk-000/file-000.parquet", "data/chunk-000/file-000.parquet",
                "videos/observation.images.front/chunk-000/file-000.mp4"):
        assert (root / rel).is_file(), rel
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["total_episodes"] == 3 and info["total_frames"] == 38 and info["total_tasks"] == 2
    assert info["vla"]["embodiment"]["embodiment_type"] == "fixed_base_arm"
    eps = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["length"] for e in eps] == [12, 17, 9]
    # many episodes share one video file, each with its own time range
    assert eps[1]["videos/observation.images.front/from_timestamp"] == pytest.approx(1.2)
    assert eps[1]["videos/observation.images.front/to_timestamp"] == pytest.approx(2.9)
    assert eps[0]["dataset_to_index"] == eps[1]["dataset_from_index"] == 12
    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert tasks.column("task").to_pylist() == ["pick up the cube", "open the drawer"]


def test_stats_have_all_keys_and_match_data(tmp_path):
    src = write_dataset(tmp_path / "ds")
    ds = Dataset.open(tmp_path / "ds")
    allv = np.concatenate([a["action"] for a in src])
    s = ds.stats["action"]
    for key in ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"):
        assert key in s, key
    np.testing.assert_allclose(s["min"], allv.min(0), rtol=1e-6)
    np.testing.assert_allclose(s["max"], allv.max(0), rtol=1e-6)
    np.testing.assert_allclose(s["mean"], allv.mean(0), rtol=1e-5)
    for key, q in QUANTILES.items():  # fewer values than the sketch's k: exact order statistics
        np.testing.assert_allclose(s[key], np.quantile(allv, q, axis=0, method="inverted_cdf"), rtol=1e-6)
    assert int(s["count"][0]) == len(allv)
    img = ds.stats["observation.images.front"]
    assert np.asarray(img["mean"]).shape == (3, 1, 1)
    assert 0.0 <= float(np.min(img["min"])) <= float(np.max(img["max"])) <= 1.0


def test_provenance_round_trip_and_required_fields(tmp_path):
    write_dataset(tmp_path / "ds")
    ds = Dataset.open(tmp_path / "ds")
    p = ds.episodes[2].provenance
    assert p["collector_id"] == "test-suite" and p["collection_method"] == "scripted"
    assert p["hardware"] == {"robot": "toy arm"} and p["calibration"] == {"episode": 2}
    assert p["license"] == "MIT" and p["created_at"]
    w = DatasetWriter(tmp_path / "bad", fps=10, features=FEATURES, robot_type="toy")
    frame = {"observation.state": np.zeros(4, np.float32), "action": np.zeros(4, np.float32),
             "observation.images.front": scene_image(0)}
    w.add_frame(frame, task="t")
    with pytest.raises(ProvenanceError, match="collector_id"):
        w.save_episode({"collection_method": "scripted"})
    with pytest.raises(ProvenanceError, match="collection_method"):
        w.save_episode({"collector_id": "me", "collection_method": "magic"})
    w.abort()
    assert not (tmp_path / "bad").exists()


def test_bad_frames_are_rejected_with_names(tmp_path):
    w = DatasetWriter(tmp_path / "x", fps=10, features=FEATURES, robot_type="toy")
    good = {"observation.state": np.zeros(4, np.float32), "action": np.zeros(4, np.float32),
            "observation.images.front": scene_image(0)}
    with pytest.raises(DatasetError, match="missing feature"):
        w.add_frame({k: v for k, v in good.items() if k != "action"}, task="t")
    with pytest.raises(DatasetError, match=r"'action' expected shape \[4\], got \[3\]"):
        w.add_frame({**good, "action": np.zeros(3, np.float32)}, task="t")
    with pytest.raises(DatasetError, match="uint8"):
        w.add_frame({**good, "observation.images.front": scene_image(0).astype(np.float32)}, task="t")
    with pytest.raises(DatasetError, match="not declared"):
        w.add_frame({**good, "reward": 1.0}, task="t")
    w.abort()


def test_existing_target_is_refused_unless_overwrite(tmp_path):
    write_dataset(tmp_path / "ds", lengths=(3,))
    with pytest.raises(DatasetError, match="already exists"):
        DatasetWriter(tmp_path / "ds", fps=10, features=FEATURES, robot_type="toy")
    write_dataset_over = DatasetWriter(tmp_path / "ds", fps=10, features=FEATURES, robot_type="toy", overwrite=True)
    for i in range(5):
        write_dataset_over.add_frame({"observation.state": np.zeros(4, np.float32), "action": np.zeros(4, np.float32),
                                      "observation.images.front": scene_image(i)}, task="t")
    write_dataset_over.save_episode(PROV)
    write_dataset_over.finalize()
    assert Dataset.open(tmp_path / "ds").num_frames == 5
    assert not list(tmp_path.glob(".ds.vla-tmp-*"))


def test_file_rotation_keeps_episodes_readable(tmp_path):
    """Tiny file-size limits force several data/video files; every episode still reads back."""
    root = tmp_path / "ds"
    src = []
    with DatasetWriter(root, fps=10, features=FEATURES, robot_type="toy", data_file_size_mb=0.000001,
                       video_file_size_mb=0.000001) as w:
        for e in range(3):
            arrays = {"observation.state": np.full((6, 4), e, np.float32), "action": np.full((6, 4), -e, np.float32),
                      "observation.images.front": np.stack([scene_image(t, seed=e) for t in range(6)])}
            for i in range(6):
                w.add_frame({k: v[i] for k, v in arrays.items()}, task="t")
            w.save_episode(PROV)
            src.append(arrays)
    assert len(list((root / "data").rglob("*.parquet"))) == 3
    ds = Dataset.open(root)
    for e in range(3):
        np.testing.assert_array_equal(ds.episode_columns(e)["action"], src[e]["action"])
        assert psnr(ds.episode_images(e, "observation.images.front"), src[e]["observation.images.front"]) > 35
