"""Standardization: resampling rules, offsets, reversible normalization, action conversions, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from vla.data import Dataset
from vla.data.formats.align import align, resample_stream
from vla.data.formats.commands import register
from vla.data.formats.convert import convert
from vla.data.formats.episode import SourceEpisode, Stream
from vla.data.formats.standardize_run import standardize_dataset
from vla.data.normalization import DatasetTransform, Normalizer
from vla.data.standardize import StandardizeConfig, binarize, to_absolute, to_delta

from .helpers import write_dataset


def test_resample_rules():
    t = np.array([0.0, 0.1, 0.2, 0.3])
    grid = np.array([0.0, 0.05, 0.1, 0.25, 0.3])
    lin = Stream(t, np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [3.0, 1.0]], np.float32), "linear", hold_dims=(1,))
    out = resample_stream(lin, grid)
    np.testing.assert_allclose(out[:, 0], [0, 0.5, 1, 2.5, 3])  # linear
    np.testing.assert_array_equal(out[:, 1], [0, 0, 1, 0, 1])  # held dim: latest at or before
    imgs = Stream(t, np.arange(4)[:, None, None, None].astype(np.uint8), "image")
    assert resample_stream(imgs, grid).reshape(-1).tolist() == [0, 0, 1, 2, 3]  # nearest earlier, never later
    flags = Stream(t, np.array([0, 1, 1, 0]), "hold")
    assert resample_stream(flags, grid).tolist() == [0, 0, 1, 1, 0]


def test_align_overlap_and_offset():
    a = Stream(np.arange(0, 1.001, 0.01), np.arange(101, dtype=np.float32)[:, None], "linear")
    b = Stream(np.arange(0.2, 0.9001, 0.05), np.arange(15, dtype=np.float32)[:, None], "linear")
    ep = SourceEpisode({"a": a, "b": b}, ["x"], None, streams_aligned=False)
    out = align(ep, fps=10)
    assert out.length == 8  # 0.2 .. 0.9: only where every stream has data
    np.testing.assert_allclose(out.frames["a"][:, 0], np.arange(20, 91, 10), atol=1e-4)
    shifted = align(ep, fps=10, offsets={"b": 0.1})  # b's samples really belong 0.1 s later
    np.testing.assert_allclose(shifted.frames["b"][0, 0], 0.0, atol=1e-6)
    assert shifted.length == 8 and shifted.frames["a"][0, 0] == pytest.approx(30, abs=1e-4)


@pytest.mark.parametrize("mode", ["min_max", "quantile", "mean_std"])
def test_normalization_reversible(mode):
    rng = np.random.default_rng(0)
    x = rng.normal(3, 5, size=(500, 4)).astype(np.float32)
    x[:, 2] = 7.0  # constant dim
    stats = {"action": {"min": x.min(0), "max": x.max(0), "mean": x.mean(0, dtype=np.float64),
                        "std": x.std(0, dtype=np.float64), "q01": np.quantile(x, 0.01, 0),
                        "q99": np.quantile(x, 0.99, 0)}}
    norm = Normalizer.from_json(json.loads(json.dumps(Normalizer.from_stats(mode, stats).to_json())))
    y = norm.normalize("action", x)
    if mode != "mean_std":
        assert y.min() >= -1 and y.max() <= 1
    back = norm.unnormalize("action", y)
    inside = np.ones(len(x), bool) if mode != "quantile" else np.all(
        (x >= stats["action"]["q01"]) & (x <= stats["action"]["q99"]), axis=1)
    np.testing.assert_allclose(back[inside], x[inside], rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(back[:, 2], 7.0)


def test_action_conversions():
    rng = np.random.default_rng(1)
    a, s = rng.normal(size=(10, 4)).astype(np.float32), rng.normal(size=(10, 5)).astype(np.float32)
    d = to_delta(a, s, [0, 1, 2])
    np.testing.assert_allclose(d[:, :3], a[:, :3] - s[:, :3], atol=1e-6)
    np.testing.assert_array_equal(d[:, 3], a[:, 3])
    np.testing.assert_allclose(to_absolute(d, s, [0, 1, 2]), a, atol=1e-6)
    g = binarize(np.array([[0.0], [0.2], [0.7], [1.0]]), 0, 0.0, 1.0)
    assert g[:, 0].tolist() == [0, 0, 1, 1]


def test_standardize_dataset_normalize_delta_binarize(tmp_path):
    eps = write_dataset(tmp_path / "src", lengths=(20, 15), use_videos=False, fps=10)
    cfg = StandardizeConfig(fps=5, normalize="min_max", action_mode="delta", binarize_gripper=3)
    report = standardize_dataset(tmp_path / "src", tmp_path / "std", cfg)
    ds = Dataset.open(tmp_path / "std")
    assert ds.fps == 5 and [e.length for e in ds.episodes] == [10, 8]
    vla = ds.info["vla"]
    norm = Normalizer.from_json(vla["normalization"])
    assert vla["action_mode"] == {"mode": "delta", "dims": [0, 1, 2], "reference": "observation.state"}
    lo, hi = vla["standardization"]["gripper_values"]
    cols = ds.episode_columns(0)
    assert cols["action"].min() >= -1 and cols["action"].max() <= 1
    # undo: unnormalize, then delta -> absolute with the (unnormalized) state; compare with every 2nd frame
    state = norm.unnormalize("observation.state", cols["observation.state"])
    action = to_absolute(norm.unnormalize("action", cols["action"]), state, [0, 1, 2])
    src_a, src_s = eps[0]["action"][::2], eps[0]["observation.state"][::2]
    np.testing.assert_allclose(state, src_s, atol=1e-5)
    np.testing.assert_allclose(action[:, :3], src_a[:, :3], atol=1e-5)
    np.testing.assert_allclose(action[:, 3], np.where(src_a[:, 3] > (lo + hi) / 2, hi, lo), atol=1e-6)
    np.testing.assert_array_equal(ds.episode_images(0, "observation.images.front"),
                                  eps[0]["observation.images.front"][::2])
    assert report.episodes == 2
    # a plain conversion of the result keeps what a policy needs to undo it
    convert(tmp_path / "std", tmp_path / "copy", use_videos=False)
    kept = DatasetTransform.from_info(Dataset.open(tmp_path / "copy").info, "copy/meta/info.json")
    assert kept.delta_dims == [0, 1, 2] and kept.normalizer.modes == {"action": "min_max",
                                                                      "observation.state": "min_max"}
    np.testing.assert_array_equal(kept.normalizer.center["action"], norm.center["action"])
    # and back to absolute actions, without normalization
    absolute = tmp_path / "abs"
    with pytest.raises(Exception, match="already normalized"):
        standardize_dataset(tmp_path / "std", absolute, StandardizeConfig(action_mode="absolute"))


def test_cli_commands(tmp_path, real_fixtures):
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    r = runner.invoke(app, ["inspect", str(real_fixtures / "mcap/rosbag2_cdr_test/cdr_test_0.mcap"), "--json"])
    assert r.exit_code == 0, r.output
    assert {t["topic"] for t in json.loads(r.output)["topics"]} == {"/test_topic", "/array_topic"}
    write_dataset(tmp_path / "src", lengths=(6, 4), use_videos=False)
    r = runner.invoke(app, ["standardize", str(tmp_path / "src"), str(tmp_path / "out"), "--normalize",
                            "quantile", "--offset", "observation.state=0.0", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output[r.output.index("{"):])["frames"] == 10
    prov = tmp_path / "p.yaml"
    prov.write_text("collector_id: me\ncollection_method: teleoperation\n")
    r = runner.invoke(app, ["convert", str(real_fixtures / "hdf5/robosuite_lift_panda_demo.hdf5"),
                            str(tmp_path / "rs"), "--provenance", str(prov), "--fps", "10"])
    assert r.exit_code == 0, r.output
    assert Dataset.open(tmp_path / "rs").num_frames == 206  # 412 steps at 20 Hz -> 10 Hz
    r = runner.invoke(app, ["convert", str(real_fixtures / "hdf5/robosuite_lift_panda_demo.hdf5"),
                            str(tmp_path / "x")])
    assert r.exit_code == 2 and "--provenance FILE" in r.output and not (tmp_path / "x").exists()
