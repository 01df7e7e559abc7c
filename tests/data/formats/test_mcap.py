"""MCAP: robot files written with the mcap / mcap-ros2-support / mcap-protobuf writers, the real
rosbag2 samples (inspect + decode), corrupted inputs."""

from __future__ import annotations

import numpy as np
import pytest

from vla.data import Dataset
from vla.data.formats.convert import convert, detect_format
from vla.data.formats.episode import ConversionError
from vla.data.formats.inspect_mcap import inspect_mcap

from .synth import ROBOT_MAPPING, command, image_at, joint, write_json_mcap, write_protobuf_mcap, write_robot_mcap


def _colour(img: np.ndarray) -> int:
    return int(round(float(img[..., 0].mean())))


@pytest.fixture(scope="module")
def robot(tmp_path_factory):
    d = tmp_path_factory.mktemp("mcap")
    write_robot_mcap(d / "ep.mcap")
    prov = {"collector_id": "op", "collection_method": "teleoperation"}
    report = convert(d / "ep.mcap", d / "out", mapping=ROBOT_MAPPING, provenance=prov, use_videos=False)
    return report, Dataset.open(d / "out"), d


def test_rates_aligned_to_10hz(robot):
    report, ds, _ = robot
    assert detect_format(robot[2] / "ep.mcap") == "mcap"
    assert (ds.fps, ds.num_episodes, ds.num_frames) == (10, 1, 21)  # 2 s at 10 Hz, both ends included
    cols = ds.episode_columns(0)
    t = np.arange(21) / 10
    np.testing.assert_allclose(cols["observation.state"], np.stack([joint(x) for x in t]), atol=1e-6)
    want = np.stack([command(x) for x in t])
    np.testing.assert_allclose(cols["action"][:, :3], want[:, :3], atol=1e-6)
    np.testing.assert_array_equal(cols["action"][:, 3], want[:, 3])  # gripper held: 0 before 1 s, 1 from 1 s
    np.testing.assert_allclose(cols["timestamp"], t, atol=1e-6)
    imgs = ds.episode_images(0, "observation.images.front")
    # nearest-earlier 30 Hz frame for each 10 Hz step: frame 3k
    assert [_colour(im) for im in imgs] == [pytest.approx(_colour(image_at(3 * k)), abs=2) for k in range(21)]
    assert ds.tasks == ["pick up the red block"] and ds.robot_type == "test_arm"


def test_interpolation_between_samples(tmp_path):
    # 25 Hz output: command samples every 20 ms, so most grid points fall between samples
    write_robot_mcap(tmp_path / "ep.mcap", seconds=1.0)
    mapping = {**ROBOT_MAPPING, "fps": 25}
    convert(tmp_path / "ep.mcap", tmp_path / "out", mapping=mapping,
            provenance={"collector_id": "op", "collection_method": "teleoperation"}, use_videos=False)
    cols = Dataset.open(tmp_path / "out").episode_columns(0)
    t = np.arange(26) / 25
    np.testing.assert_allclose(cols["action"][:, 0], 2 * t, atol=1e-6)  # linear signal: interpolation is exact


def test_marker_split_and_offsets(tmp_path, prov_file):
    write_robot_mcap(tmp_path / "two.mcap", marker_times=(0.0, 1.0), instruction=None)
    mapping = {**ROBOT_MAPPING, "episodes": {"topic": "/episode", "field": "data"}}
    convert(tmp_path / "two.mcap", tmp_path / "out", mapping=mapping, provenance=prov_file, use_videos=False,
            fps=10)
    ds = Dataset.open(tmp_path / "out")
    assert [e.length for e in ds.episodes] == [10, 11]
    assert [e.tasks for e in ds.episodes] == [["task 0"], ["task 1"]]
    np.testing.assert_allclose(ds.episode_columns(1)["observation.state"][0], joint(1.0), atol=1e-6)
    # a +0.05 s latency offset on the camera: the 10 Hz step at t sees the frame stamped <= t - 0.05
    from vla.data.standardize import StandardizeConfig

    cfg = StandardizeConfig(offsets={"observation.images.front": 0.05})
    convert(tmp_path / "two.mcap", tmp_path / "off", mapping=mapping, provenance=prov_file, use_videos=False,
            fps=10, standardize=cfg)
    imgs = Dataset.open(tmp_path / "off").episode_images(1, "observation.images.front")
    # grid starts at 1.05 s (camera starts later now); frame stamped 1.0 shows at 1.05
    assert _colour(imgs[0]) == pytest.approx(_colour(image_at(30)), abs=2)


def test_json_encoding_provenance_from_metadata(tmp_path):
    write_json_mcap(tmp_path / "j.mcap")
    mapping = {"fps": 10, "task": "stack", "features": {
        "observation.state": {"topic": "/state", "field": "q"},
        "observation.images.cam": {"topic": "/image"},
        "action": [{"topic": "/action", "field": "cmd.v"}]}}
    convert(tmp_path / "j.mcap", tmp_path / "out", mapping=mapping, use_videos=False)  # no --provenance needed
    ds = Dataset.open(tmp_path / "out")
    assert ds.num_frames == 11
    p = ds.episodes[0].provenance
    assert p["collector_id"] == "operator-7" and p["source"]["robot"] == "json_bot"
    np.testing.assert_allclose(ds.episode_columns(0)["action"][5], command(0.5), atol=1e-6)
    np.testing.assert_array_equal(ds.episode_images(0, "observation.images.cam")[5], image_at(5))  # PNG: exact


def test_protobuf_encoding(tmp_path, prov_file):
    write_protobuf_mcap(tmp_path / "p.mcap")
    mapping = {"fps": 10, "task": "t", "features": {
        "observation.state": {"topic": "/state", "field": "values"},
        "observation.images.cam": {"topic": "/image"},
        "action": {"topic": "/action", "field": "values", "hold_dims": [3]}}}
    convert(tmp_path / "p.mcap", tmp_path / "out", mapping=mapping, provenance=prov_file, use_videos=False)
    cols = Dataset.open(tmp_path / "out").episode_columns(0)
    np.testing.assert_allclose(cols["observation.state"][4], joint(0.4), atol=1e-6)


def test_real_rosbag2_inspect_and_decode(real_fixtures):
    info = inspect_mcap(real_fixtures / "mcap/rosbag2_talker/talker.mcap", decode=True)
    topics = {t["topic"]: t for t in info["topics"]}
    assert info["profile"] == "ros2" and info["messages"] == 20
    assert topics["/topic"]["schema"] == "std_msgs/msg/String" and topics["/topic"]["messages"] == 10
    assert topics["/rosout"]["schema"] == "rcl_interfaces/msg/Log" and topics["/rosout"]["decoded"] == 10
    assert topics["/parameter_events"]["messages"] == 0
    assert "Hello, world! 0" in topics["/topic"]["sample"]
    assert topics["/topic"]["message_encoding"] == "cdr" and topics["/topic"]["schema_encoding"] == "ros2msg"
    cdr = inspect_mcap(real_fixtures / "mcap/rosbag2_cdr_test/cdr_test_0.mcap", decode=True)
    counts = {t["topic"]: (t["schema"], t["messages"], t["decoded"]) for t in cdr["topics"]}
    assert counts == {"/test_topic": ("test_msgs/msg/BasicTypes", 3, 3), "/array_topic": ("test_msgs/msg/Arrays", 4, 4)}
    assert cdr["start_ns"] == 1586406456763032325 and cdr["end_ns"] == 1586406456914169506


def test_real_rosbag2_convert_needs_mapping(real_fixtures, tmp_path, nothing_at):
    with pytest.raises(ConversionError, match=r"needs a mapping file .*/topic \(std_msgs/msg/String\)"):
        convert(real_fixtures / "mcap/rosbag2_talker/talker.mcap", tmp_path / "out")
    nothing_at(tmp_path / "out")


def test_corrupt_mcap(robot, tmp_path, prov_file, nothing_at):
    raw = (robot[2] / "ep.mcap").read_bytes()
    (tmp_path / "trunc.mcap").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ConversionError, match="trunc.mcap: .*(truncated|corrupted|not a readable)"):
        convert(tmp_path / "trunc.mcap", tmp_path / "out", mapping=ROBOT_MAPPING, provenance=prov_file)
    nothing_at(tmp_path / "out")
    bad = {**ROBOT_MAPPING, "features": {**ROBOT_MAPPING["features"],
                                         "action": {"topic": "/arm/cmd_missing", "field": "data"}}}
    with pytest.raises(ConversionError, match=r"mapped topic\(s\) \['/arm/cmd_missing'\] have no messages"):
        convert(robot[2] / "ep.mcap", tmp_path / "out", mapping=bad, provenance=prov_file)
    nothing_at(tmp_path / "out")
    bad_field = {**ROBOT_MAPPING, "features": {**ROBOT_MAPPING["features"],
                                               "observation.state": {"topic": "/joint_states", "field": "pos"}}}
    with pytest.raises(ConversionError, match=r"'/joint_states'.*field 'pos': message has no 'pos'"):
        convert(robot[2] / "ep.mcap", tmp_path / "out", mapping=bad_field, provenance=prov_file)
    nothing_at(tmp_path / "out")
