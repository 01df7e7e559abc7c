"""info.json / stats.json carry what LeRobot 0.6.1 writes, and the vla block survives its edit tool.

LeRobot 0.6.1 reads info.json into a dataclass with a fixed set of fields and writes only those back
(``lerobot-edit-dataset`` delete/merge), keeping each feature's dict as it was. ``lerobot_edit`` below
does the same to a dataset of ours; benchmarks/lerobot_interop.py checks it with LeRobot itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.data.helpers import FEATURES, PROV, make_episode_arrays, write_dataset
from vla.data import Dataset, DatasetError, DatasetWriter, EmbodimentSpec
from vla.data.meta_checks import check_info
from vla.data.video import VideoAppender
from vla.data.vla_block import embed_vla_block, restore_vla_block

# the fields of lerobot.datasets.utils.DatasetInfo (0.6.1); ``tools`` is dropped when unset
LEROBOT_INFO_FIELDS = ("codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks",
                       "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "data_path", "video_path",
                       "robot_type", "splits")
INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def lerobot_edit(root: Path) -> dict:
    """Rewrite info.json as LeRobot 0.6.1's tools do: unknown top-level keys dropped, features kept."""
    path = root / "meta/info.json"
    info = json.loads(path.read_text())
    edited = {k: info[k] for k in LEROBOT_INFO_FIELDS if k in info}
    path.write_text(json.dumps(edited, indent=4))
    return info


def test_info_has_lerobot_fields(tmp_path):
    write_dataset(tmp_path / "ds")
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    for key in ("chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "fps"):
        assert type(info[key]) is int, key
    video = info["features"]["observation.images.front"]["info"]
    assert video["is_depth_map"] is False and "video.is_depth_map" not in video
    assert type(video["video.fps"]) is int and video["video.codec"] == "h264"
    assert {"video.g", "video.crf", "video.preset", "video.fast_decode", "video.video_backend",
            "video.extra_options"} <= set(video)


def test_video_info_states_the_encoder_settings_used(tmp_path):
    write_dataset(tmp_path / "ds")
    video = json.loads((tmp_path / "ds/meta/info.json").read_text())["features"]["observation.images.front"]["info"]
    app = VideoAppender(tmp_path / "probe.mp4", 10, 16, 16)
    opts = app._stream.codec_context.options
    app.close()
    assert {"crf": str(video["video.crf"]), "preset": video["video.preset"], "g": str(video["video.g"])} == opts
    assert app._stream.codec_context.name == "libx264" and video["video.pix_fmt"] == app._stream.pix_fmt


def test_fractional_file_size_stays_a_float(tmp_path):
    with DatasetWriter(tmp_path / "ds", fps=12.5, features=FEATURES, robot_type="toy", data_file_size_mb=0.5,
                       video_file_size_mb=2) as w:
        arrays = make_episode_arrays(4, seed=0)
        for i in range(4):
            w.add_frame({k: v[i] for k, v in arrays.items()}, task="t")
        w.save_episode(PROV)
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["data_files_size_in_mb"] == 0.5 and type(info["video_files_size_in_mb"]) is int
    assert info["fps"] == 12.5 and info["features"]["observation.images.front"]["info"]["video.fps"] == 12.5


def test_stats_cover_index_columns(tmp_path):
    write_dataset(tmp_path / "ds", lengths=(12, 17, 9), tasks=("a", "b"))
    stats = json.loads((tmp_path / "ds/meta/stats.json").read_text())
    fi = np.concatenate([np.arange(n) for n in (12, 17, 9)])
    expect = {"frame_index": fi, "index": np.arange(38), "timestamp": fi / 10.0,
              "episode_index": np.repeat([0, 1, 2], [12, 17, 9]), "task_index": np.repeat([0, 1, 0], [12, 17, 9])}
    for k, v in expect.items():
        s = stats[k]
        assert s["count"] == [38], k
        np.testing.assert_allclose([s["min"][0], s["max"][0], s["mean"][0], s["std"][0]],
                                   [v.min(), v.max(), v.mean(), v.std()], rtol=1e-6, err_msg=k)
    # per episode, as LeRobot keeps them in meta/episodes (its merge shifts stats/index/* by an offset)
    eps = pq.read_table(tmp_path / "ds/meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["stats/index/min"] for e in eps] == [[0.0], [12.0], [29.0]]
    assert all(f"stats/{k}/q50" in eps[0] for k in INDEX_COLUMNS)


def test_names_come_from_the_spec_when_features_have_none(tmp_path):
    feats = {k: {**v, "names": None} for k, v in FEATURES.items()}
    emb = EmbodimentSpec(name="toy", robot_type="toy", action_names=["a0", "a1", "a2", "a3"],
                         state_names=["s0", "s1"])          # 2 names for a 4-wide state: not used
    out = embed_vla_block(feats, {"embodiment": emb.to_dict()})
    assert out["action"]["names"] == ["a0", "a1", "a2", "a3"]
    assert out["observation.state"]["names"] is None
    given = embed_vla_block(FEATURES, {"embodiment": emb.to_dict()})
    assert given["action"]["names"] == ["dx", "dy", "dz", "gripper"]     # the caller's names win


def test_copy_sits_on_one_carrier_without_source():
    feats = {"observation.state": {"dtype": "float32", "shape": [2], "vla": {"stale": True}},
             "obs.cam": {"dtype": "video", "shape": [8, 8, 3]}}
    out = embed_vla_block(feats, {"format_version": 1, "embodiment": None, "source": {"path": "/x"},
                                  "normalization": {"mode": "mean_std"}})
    # no action feature: the first feature carries it; the old copy is replaced, not duplicated
    assert out["observation.state"]["vla"] == {"format_version": 1, "embodiment": None,
                                               "normalization": {"mode": "mean_std"}}
    assert "vla" not in out["obs.cam"] and feats["observation.state"]["vla"] == {"stale": True}


def test_spec_restored_after_a_lerobot_style_edit(tmp_path):
    write_dataset(tmp_path / "ds")
    before = Dataset.open(tmp_path / "ds").embodiment
    original = lerobot_edit(tmp_path / "ds")
    assert "vla" not in json.loads((tmp_path / "ds/meta/info.json").read_text())
    ds = Dataset.open(tmp_path / "ds")
    assert ds.embodiment == before == original["vla"]["embodiment"]
    assert ds.info["vla"]["restored_from"] == "features.action.vla"
    assert ds.info["vla"]["format_version"] == 1
    assert ds.features["action"]["names"] == before["action_names"]


def test_source_is_the_part_not_restored():
    info = {"features": {"action": {"dtype": "float32", "shape": [1], "vla": {"embodiment": {"name": "x"}}}}}
    block = restore_vla_block(info)["vla"]
    assert block == {"embodiment": {"name": "x"}, "restored_from": "features.action.vla"}
    assert "vla" not in info                     # the input is not modified


def test_top_level_block_wins_over_the_copy():
    info = {"vla": {"embodiment": {"name": "top"}},
            "features": {"action": {"dtype": "float32", "shape": [1], "vla": {"embodiment": {"name": "copy"}}}}}
    assert restore_vla_block(info)["vla"]["embodiment"]["name"] == "top"


def test_foreign_dataset_gets_no_block():
    info = {"features": {"action": {"dtype": "float32", "shape": [2], "names": ["a", "b"]}}}
    assert "vla" not in restore_vla_block(info)


def test_malformed_copy_names_the_field(tmp_path):
    write_dataset(tmp_path / "ds")
    lerobot_edit(tmp_path / "ds")
    path = tmp_path / "ds/meta/info.json"
    info = json.loads(path.read_text())
    info["features"]["action"]["vla"] = ["not", "an", "object"]
    path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"features\.action\.vla.*list.*expected an object"):
        Dataset.open(tmp_path / "ds")
    info["features"]["action"]["vla"] = {"embodiment": "arm"}
    path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"vla\.embodiment.*str.*expected an object"):
        Dataset.open(tmp_path / "ds")


def test_spec_restored_from_an_info_json_lerobot_wrote():
    # meta/info.json as `lerobot-edit-dataset --operation.type delete_episodes` (0.6.1) wrote it for a
    # dataset of ours (benchmarks/lerobot_interop.py): no top-level vla block, features kept
    path = Path(__file__).parent / "fixtures" / "lerobot061_delete_episodes_info.json"
    raw = json.loads(path.read_text())
    assert list(raw) == list(LEROBOT_INFO_FIELDS)
    info = check_info(raw, path)
    emb = EmbodimentSpec.from_dict(info["vla"]["embodiment"])
    assert (emb.name, emb.embodiment_type, emb.gripper_dims) == ("interop_arm", "fixed_base_arm", [3])
    assert emb.action_names == raw["features"]["action"]["names"] == ["dx", "dy", "dz", "gripper"]
    assert info["vla"]["restored_from"] == "features.action.vla" and "source" not in info["vla"]
