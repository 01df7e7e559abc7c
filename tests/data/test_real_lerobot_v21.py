"""The store reads a real LeRobot v2.1 dataset written by another project (partial copy, AV1 video)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from vla.data import Dataset
from vla.data.info import dataset_summary

G1 = "lerobot_v2.1/unitree_g1_pick_bottle"


def test_g1_reads_present_episode_and_reports_missing(real_fixtures):
    ds = Dataset.open(real_fixtures / G1)
    assert ds.version == "v2.1" and ds.fps == 30 and ds.robot_type == "Unitree_G1_Inspire"
    assert ds.episode_indices == [29]
    assert ds.missing_episodes == [i for i in range(100) if i != 29]
    assert ds.num_frames == 221
    assert ds.tasks == ["Pick up the yellow bottle on the table."]
    cols = ds.episode_columns(29)
    src = pq.read_table(real_fixtures / G1 / "data/chunk-000/episode_000029.parquet")
    np.testing.assert_array_equal(cols["action"], np.stack(src.column("action").to_pylist()).astype(np.float32))
    assert cols["observation.state"].shape == (221, 26)


def test_g1_video_decodes_and_random_access_agrees(real_fixtures):
    ds = Dataset.open(real_fixtures / G1)
    frames = ds.episode_images(29, "observation.images.cam_high")
    assert frames.shape == (221, 480, 640, 3) and frames.dtype == np.uint8
    f = ds.frame(29, 150)
    np.testing.assert_array_equal(f["observation.images.cam_high"], frames[150])
    assert float(frames.std()) > 5  # a real picture, not a blank


def test_g1_stats_come_from_episode_stats(real_fixtures):
    ds = Dataset.open(real_fixtures / G1)
    rows = [json.loads(x) for x in (real_fixtures / G1 / "meta/episodes_stats.jsonl").read_text().splitlines()]
    mins = np.min([r["stats"]["action"]["min"] for r in rows], axis=0)
    np.testing.assert_allclose(ds.stats["action"]["min"], mins)
    assert int(ds.stats["action"]["count"][0]) == sum(int(r["stats"]["action"]["count"][0]) for r in rows)


def test_g1_summary(real_fixtures):
    s = dataset_summary(Dataset.open(real_fixtures / G1))
    assert s["episodes"] == 1 and s["frames"] == 221 and len(s["missing_episodes"]) == 99
    assert s["features"]["action"]["shape"] == [26]
