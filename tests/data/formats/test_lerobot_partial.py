"""LeRobot sources as people publish them: missing videos (--skip-missing-videos), renamed feature keys
and misplaced folders (--mapping)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vla.cli import app
from vla.data import Dataset, DatasetWriter
from vla.data.formats.convert import convert
from vla.data.formats.episode import ConversionError

from ..helpers import PROV, scene_image, write_dataset

G1 = "lerobot_v2.1/unitree_g1_pick_bottle"


def write_odd(root: Path, lengths=(5, 7)) -> list[dict[str, np.ndarray]]:
    """A LeRobot v3.0 dataset with the names some publishers use: actions, state, image."""
    feats = {"state": {"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]},
             "actions": {"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]},
             "image": {"dtype": "video", "shape": [64, 80, 3], "names": None}}
    rng = np.random.default_rng(0)
    out = []
    with DatasetWriter(root, fps=10, features=feats, robot_type="toy") as w:
        for e, n in enumerate(lengths):
            ep = {"state": rng.normal(size=(n, 3)).astype(np.float32),
                  "actions": rng.normal(size=(n, 3)).astype(np.float32),
                  "image": np.stack([scene_image(i, seed=e) for i in range(n)])}
            for i in range(n):
                w.add_frame({k: v[i] for k, v in ep.items()}, task="stack the cups")
            w.save_episode(PROV)
            out.append(ep)
    return out


def test_renamed_keys_error_names_expected_and_found(tmp_path, nothing_at):
    write_odd(tmp_path / "odd")
    with pytest.raises(ConversionError) as e:
        convert(tmp_path / "odd", tmp_path / "out")
    msg = str(e.value)
    assert "expected 'action' (the action feature), found 'actions'" in msg
    assert "expected 'observation.state' (the state feature), found 'state'" in msg
    assert "expected 'observation.images.image' (a camera (video)), found 'image'" in msg
    assert "--mapping FILE holding features: {action: actions, observation.state: state, " \
           "observation.images.image: image}" in msg
    nothing_at(tmp_path / "out")


def test_mapping_renames_and_result_opens(tmp_path):
    arrays = write_odd(tmp_path / "odd")
    mapping = tmp_path / "map.yaml"
    mapping.write_text("features:\n  action: actions\n  observation.state: {key: state}\n"
                       "  observation.images.image: image\n")
    r = CliRunner().invoke(app, ["convert", str(tmp_path / "odd"), str(tmp_path / "out"), "--mapping", str(mapping),
                                 "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output[r.output.index("{"):])
    assert "mapping: features renamed actions -> action, state -> observation.state, image -> " \
           "observation.images.image" in report["notes"]
    ds = Dataset.open(tmp_path / "out")
    assert {"action", "observation.state", "observation.images.image"} <= set(ds.features)
    assert not {"actions", "state", "image"} & set(ds.features)
    assert ds.features["action"]["names"] == ["a", "b", "c"]
    src = Dataset.open(tmp_path / "odd")
    for e in range(2):
        np.testing.assert_array_equal(ds.episode_columns(e)["action"], arrays[e]["actions"])
        np.testing.assert_array_equal(ds.episode_columns(e)["observation.state"], arrays[e]["state"])
        np.testing.assert_array_equal(ds.episode_images(e, "observation.images.image"), src.episode_images(e, "image"))
    assert ds.episodes[0].provenance["source"]["renamed_features"]["actions"] == "action"
    assert ds.info["vla"]["source"]["renamed_features"] == {"actions": "action", "state": "observation.state",
                                                           "image": "observation.images.image"}


@pytest.mark.parametrize("mapping, message", [
    ({"features": {"action": "actionz"}}, r"features\.action: the source has no feature 'actionz' \(features: "),
    ({"features": {"action": "image"}}, r"features\.action: source 'image' is a camera"),
    ({"features": {"observation.images.s": "state"}}, r"source 'state' is not a camera \(dtype float32\)"),
    ({"features": {"action": "actions", "observation.state": "actions"}}, r"'actions' is already mapped to 'action'"),
    ({"features": {"../x": "actions"}}, r"mapping: feature name '\.\./x'"),
    ({"features": ["action"]}, r"features: expected an object of new name -> source feature"),
    ({"video_path": "../{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"}, r"points outside"),
    ({"video_path": 5}, r"mapping: video_path: expected a path template string, got 5"),
    ({"data_path": "data/{episode_index}.parquet"}, r"data_path.*uses the field \{episode_index\}"),
    ({"topics": {}}, r"unknown key\(s\) \['topics'\] for a LeRobot source; expected features, video_path, data_path"),
])
def test_mapping_is_validated(tmp_path, mapping, message):
    write_odd(tmp_path / "odd", lengths=(3,))
    with pytest.raises(Exception, match=message):
        convert(tmp_path / "odd", tmp_path / "out", mapping=mapping)
    assert not (tmp_path / "out").exists()


def test_mapping_video_path_reads_a_misplaced_folder(tmp_path):
    write_odd(tmp_path / "odd", lengths=(4, 3))
    (tmp_path / "odd/videos").rename(tmp_path / "odd/video")
    feats = {"action": "actions", "observation.state": "state", "observation.images.image": "image"}
    with pytest.raises(ConversionError, match=r"video_path' says videos/.*files are under video/image/chunk-000/"):
        convert(tmp_path / "odd", tmp_path / "out", mapping={"features": feats})
    tpl = "video/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    r = convert(tmp_path / "odd", tmp_path / "out", mapping={"features": feats, "video_path": tpl})
    assert (r.episodes, r.frames) == (2, 7)
    assert Dataset.open(tmp_path / "out").episode_images(1, "observation.images.image").shape == (3, 64, 80, 3)


def test_missing_videos_fail_unless_skipped(tmp_path, nothing_at):
    src = tmp_path / "src"
    arrays = write_dataset(src, lengths=(6, 9, 4))
    for f in src.rglob("*.mp4"):
        f.unlink()
    with pytest.raises(ConversionError) as e:
        convert(src, tmp_path / "out")
    msg = str(e.value)
    assert "1 video file(s) cannot be read:" in msg and "file-000.mp4 (absent; cameras ['observation.images.front']; " \
           "episodes 0, 1, 2)" in msg and "--skip-missing-videos" in msg
    nothing_at(tmp_path / "out")
    r = CliRunner().invoke(app, ["convert", str(src), str(tmp_path / "out"), "--skip-missing-videos"])
    assert r.exit_code == 0, r.output
    assert "note: --skip-missing-videos: camera(s) ['observation.images.front'] left out" in r.output
    ds = Dataset.open(tmp_path / "out")
    assert (ds.num_episodes, ds.num_frames, ds.camera_keys) == (3, 19, [])
    np.testing.assert_array_equal(ds.episode_columns(1)["action"], arrays[1]["action"])
    assert ds.episodes[2].provenance["source"]["dropped_features"] == ["observation.images.front"]
    assert ds.info["vla"]["source"]["dropped_features"] == ["observation.images.front"]
    assert ds.episodes[2].provenance["collector_id"] == "test-suite"


def test_g1_layout_without_video_converts_only_when_asked(real_fixtures, tmp_path, prov_file):
    root = tmp_path / "g1"
    shutil.copytree(real_fixtures / G1, root, ignore=shutil.ignore_patterns("*.mp4"))
    with pytest.raises(ConversionError, match=r"episode_000029\.mp4 \(absent; .*--skip-missing-videos"):
        convert(root, tmp_path / "out", provenance=prov_file)
    r = convert(root, tmp_path / "out", provenance=prov_file, skip_missing_videos=True)
    assert (r.episodes, r.frames) == (1, 221)
    assert Dataset.open(tmp_path / "out").features["action"]["shape"] == [26]


def test_skip_missing_videos_is_refused_for_other_formats(real_fixtures, tmp_path):
    with pytest.raises(ConversionError, match="--skip-missing-videos is for LeRobot sources; this is hdf5"):
        convert(real_fixtures / "hdf5/robosuite_lift_panda_demo.hdf5", tmp_path / "o", skip_missing_videos=True)
