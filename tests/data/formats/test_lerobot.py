"""LeRobot sources: the real v2.1 G1 sample, and a round trip v3.0 -> ours -> read back."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from vla.data import Dataset
from vla.data.formats.convert import convert, detect_format
from vla.data.formats.episode import ConversionError

from ..helpers import write_dataset

G1 = "lerobot_v2.1/unitree_g1_pick_bottle"


def test_g1_v21(real_fixtures, tmp_path, prov_file, nothing_at):
    src = real_fixtures / G1
    assert detect_format(src) == "lerobot"
    with pytest.raises(ConversionError, match="--provenance"):
        convert(src, tmp_path / "none")
    nothing_at(tmp_path / "none")
    r = convert(src, tmp_path / "out", provenance=prov_file)
    assert any("99 episode(s) listed in meta but missing" in n for n in r.notes)
    ds = Dataset.open(tmp_path / "out")
    assert (ds.num_episodes, ds.num_frames, ds.fps, ds.robot_type) == (1, 221, 30, "Unitree_G1_Inspire")
    assert ds.features["observation.state"]["shape"] == [26] and ds.features["action"]["shape"] == [26]
    assert ds.features["action"]["names"][0] == "kLeftShoulderPitch"
    assert ds.tasks == ["Pick up the yellow bottle on the table."]
    table = pq.read_table(src / "data/chunk-000/episode_000029.parquet")
    cols = ds.episode_columns(0)
    for key in ("observation.state", "action"):
        np.testing.assert_array_equal(cols[key], np.stack(table.column(key).to_numpy(zero_copy_only=False)))
    np.testing.assert_allclose(cols["timestamp"], table.column("timestamp").to_numpy(), atol=1e-6)
    frames = ds.episode_images(0, "observation.images.cam_high")
    assert frames.shape == (221, 480, 640, 3)
    source = Dataset.open(src).episode_images(29, "observation.images.cam_high")
    np.testing.assert_array_equal(frames, source)  # the AV1 stream is copied, not re-encoded
    assert r.copied_videos == ["observation.images.cam_high"]
    assert ds.episodes[0].provenance["source"]["episode_index"] == 29


def test_v30_round_trip(tmp_path):
    src = tmp_path / "src"
    write_dataset(src, lengths=(6, 9, 4), use_videos=False)
    convert(src, tmp_path / "ours", use_videos=False)  # provenance travels with our episodes
    a, b = Dataset.open(src), Dataset.open(tmp_path / "ours")
    assert (b.num_episodes, b.num_frames, b.fps, b.tasks) == (a.num_episodes, a.num_frames, a.fps, a.tasks)
    assert b.features.keys() == a.features.keys()
    for e in range(a.num_episodes):
        ca, cb = a.episode_columns(e), b.episode_columns(e)
        assert ca.keys() == cb.keys()
        for k in ca:
            np.testing.assert_array_equal(ca[k], cb[k], err_msg=k)
        np.testing.assert_array_equal(a.episode_images(e, "observation.images.front"),
                                      b.episode_images(e, "observation.images.front"))
        pa_, pb = a.episodes[e].provenance, b.episodes[e].provenance
        assert (pb["collector_id"], pb["calibration"]) == (pa_["collector_id"], pa_["calibration"])
        assert pb["source"]["upstream"] == pa_["source"] and pb["source"]["format"] == "lerobot_v3.0"
    for stat in ("min", "max", "mean"):
        np.testing.assert_allclose(b.stats["action"][stat], a.stats["action"][stat], rtol=1e-6)
    assert b.embodiment == a.embodiment
