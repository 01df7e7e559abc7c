"""RLDS/TFDS: the real bridge sample and synthetic datasets (dict actions, ragged, missing shards)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from vla.data import Dataset
from vla.data.formats.align import decode_image
from vla.data.formats.convert import convert
from vla.data.formats.episode import ConversionError
from vla.data.formats.example import parse_example
from vla.data.formats.rlds import action_order
from vla.data.formats.tfrecord import iter_records

from .synth import write_rlds

BRIDGE = "rlds/bridge_dataset"
SHARD = "rlds/bridge_dataset/1.0.0/bridge_dataset-train.tfrecord-00000-of-00001"


@pytest.fixture(scope="module")
def bridge(real_fixtures, tmp_path_factory):
    dst = tmp_path_factory.mktemp("bridge") / "out"
    prov = {"collector_id": "bridge-v2", "collection_method": "teleoperation"}
    report = convert(real_fixtures / BRIDGE, dst, provenance=prov, use_videos=False)
    return report, Dataset.open(dst)


def test_bridge_counts_and_notes(bridge):
    report, ds = bridge
    assert (ds.num_episodes, ds.num_frames, ds.fps) == (25, 250, 5)
    assert all(e.length == 10 for e in ds.episodes)
    assert len(ds.camera_keys) == 4 and ds.features["action"]["shape"] == [7]
    assert any("'val'" in n and "bridge_dataset-val.tfrecord-00000-of-00001" in n and "missing" in n
               for n in report.notes)


def test_bridge_values_equal_source(bridge, real_fixtures):
    _, ds = bridge
    records = [parse_example(r) for r in iter_records(real_fixtures / SHARD)]
    for e, ex in enumerate(records):
        cols = ds.episode_columns(e)
        np.testing.assert_array_equal(cols["action"], ex["steps/action"].reshape(10, 7))
        np.testing.assert_array_equal(cols["observation.state"], ex["steps/observation/state"].reshape(10, 7))
        np.testing.assert_array_equal(cols["language_embedding"], ex["steps/language_embedding"].reshape(10, 512))
        assert ds.episodes[e].tasks == [ex["steps/language_instruction"][0].decode()]
        assert not cols["is_last"].any()  # cut episodes: boundaries came from the Example
    for cam in range(4):
        img = ds.episode_images(3, f"observation.images.image_{cam}")
        src = np.stack([decode_image(b, "") for b in records[3][f"steps/observation/image_{cam}"]])
        np.testing.assert_array_equal(img, src)  # PNG storage: exact


def test_bridge_provenance(bridge):
    _, ds = bridge
    p = ds.episodes[0].provenance
    assert p["collector_id"] == "bridge-v2"
    s = p["source"]
    assert s["format"] == "rlds" and s["dataset"] == "bridge_dataset" and s["split"] == "train"
    assert len(s["sha256"]) == 64 and s["episode_metadata"]["episode_id"] == 5


def test_bridge_requires_provenance(real_fixtures, tmp_path, nothing_at):
    with pytest.raises(ConversionError, match="--provenance FILE"):
        convert(real_fixtures / BRIDGE, tmp_path / "out")
    nothing_at(tmp_path / "out")


def test_dict_action_ragged_language_in_observation(tmp_path, prov_file):
    eps = write_rlds(tmp_path / "src", [5, 7, 3], shards=2)
    r = convert(tmp_path / "src", tmp_path / "out", provenance=prov_file, fps=10,
                mapping={"pad": {"steps/observation/points": 3}}, use_videos=False)
    ds = Dataset.open(tmp_path / "out")
    assert r.episodes == 3 and ds.num_frames == 15
    names = ds.features["action"]["names"]
    assert names[:3] == ["world_vector_0", "world_vector_1", "world_vector_2"]
    assert names[6] == "gripper_closedness_action_0"
    # shard 0 holds lengths 5 and 3, shard 1 holds 7: `eps` is in shard order, as the output
    assert [e.length for e in ds.episodes] == [5, 3, 7]
    for out_e, ep in enumerate(eps):
        cols = ds.episode_columns(out_e)
        want = np.concatenate([ep["world_vector"], ep["rotation_delta"], ep["gripper"]], axis=1)
        np.testing.assert_array_equal(cols["action"], want)
        assert ds.episodes[out_e].tasks == [ep["instruction"]]
        pts = cols["observation.points"]
        for t, p in enumerate(ep["points"]):
            np.testing.assert_array_equal(pts[t, : len(p)], p)
        np.testing.assert_array_equal(ds.episode_images(out_e, "observation.images.image")[0], ep["images"][0])


def test_ragged_skipped_without_pad_and_missing_shard(tmp_path, prov_file):
    write_rlds(tmp_path / "src", [4, 4, 4, 4], shards=2, missing_shards=(1,))
    r = convert(tmp_path / "src", tmp_path / "out", provenance=prov_file, fps=10, use_videos=False)
    assert r.episodes == 2
    assert any("toy_rlds-train.tfrecord-00001-of-00002" in n for n in r.notes)
    assert any("ragged" in n and "points" in n for n in r.notes)
    assert "observation.points" not in Dataset.open(tmp_path / "out").features


def test_needs_fps_for_unknown_dataset(tmp_path, prov_file, nothing_at):
    write_rlds(tmp_path / "src", [3])
    with pytest.raises(ConversionError, match="--fps"):
        convert(tmp_path / "src", tmp_path / "out", provenance=prov_file)
    nothing_at(tmp_path / "out")


def test_corrupt_shard_leaves_nothing(real_fixtures, tmp_path, prov_file, nothing_at):
    src = tmp_path / "bridge" / "1.0.0"
    shutil.copytree(real_fixtures / BRIDGE / "1.0.0", src)
    shard = src / "bridge_dataset-train.tfrecord-00000-of-00001"
    shard.chmod(0o644)
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # corrupt the data of a record in the middle
    shard.write_bytes(bytes(raw))
    with pytest.raises(ConversionError, match=r"bridge_dataset-train.tfrecord-00000-of-00001: record \d+ .*CRC"):
        convert(src, tmp_path / "out", provenance=prov_file)
    nothing_at(tmp_path / "out")
    shard.write_bytes(bytes(raw[: len(raw) - 1000]))  # truncated
    with pytest.raises(ConversionError, match="truncated|CRC"):
        convert(src, tmp_path / "out", provenance=prov_file)
    nothing_at(tmp_path / "out")


def test_missing_feature_in_example(tmp_path, prov_file, nothing_at):
    import json

    write_rlds(tmp_path / "src", [3, 3])
    feats = json.loads((tmp_path / "src" / "features.json").read_text())
    steps = feats["featuresDict"]["features"]["steps"]["sequence"]["feature"]["featuresDict"]["features"]
    steps["discount"] = steps["reward"]
    (tmp_path / "src" / "features.json").write_text(json.dumps(feats))
    with pytest.raises(ConversionError, match=r"record 0: feature 'steps/discount' declared in features.json"):
        convert(tmp_path / "src", tmp_path / "out", provenance=prov_file, fps=10)
    nothing_at(tmp_path / "out")


def test_action_order_documented():
    assert action_order(["terminate_episode", "world_vector", "gripper_closedness_action", "rotation_delta"]) == [
        "world_vector", "rotation_delta", "gripper_closedness_action", "terminate_episode"]


def test_parallel_workers_same_result(tmp_path, prov_file):
    write_rlds(tmp_path / "src", [4, 5, 6, 3], shards=2)
    a = convert(tmp_path / "src", tmp_path / "a", provenance=prov_file, fps=10, use_videos=False)
    b = convert(tmp_path / "src", tmp_path / "b", provenance=prov_file, fps=10, use_videos=False, workers=2)
    assert (a.episodes, a.frames) == (b.episodes, b.frames)
    da, db = Dataset.open(tmp_path / "a"), Dataset.open(tmp_path / "b")
    for e in range(4):
        np.testing.assert_array_equal(da.episode_columns(e)["action"], db.episode_columns(e)["action"])
