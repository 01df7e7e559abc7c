"""A policy trained on a standardized dataset (normalized, delta actions) acts in robot units, in process
and served; training takes its statistics from the dataset's stats.json and refuses what it cannot undo."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from vla.data import Dataset, DatasetError
from vla.data.formats.standardize_run import standardize_dataset
from vla.data.standardize import StandardizeConfig
from vla.models import NormalizationStats, Policy
from vla.serve.client import PolicyClient
from vla.serve.policy_service import load_policy_service
from vla.serve.server import PolicyServer
from vla.train.config import TrainConfig
from vla.train.loop import train

from .test_train import TINY_POLICY
from .tiny_dataset import make_dataset


def _train(dataset: Path, out: Path, **changes) -> Path:
    cfg = TrainConfig(dataset=str(dataset), out=str(out), policy=dict(TINY_POLICY), steps=3, batch_size=4,
                      log_every=1, checkpoint_every=3, warmup_steps=1, progress=False,
                      cache_dir=str(out.parent / "cache"), **changes)
    return train(cfg)


@pytest.fixture(scope="module")
def delta_run(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("units")
    make_dataset(base / "raw", episodes=3, length=10, size=32)
    # what `vla standardize RAW STD --normalize min_max --action-mode delta` does
    standardize_dataset(base / "raw", base / "std", StandardizeConfig(normalize="min_max", action_mode="delta"))
    return base / "std", _train(base / "std", base / "run", max_episodes=2)


def _obs(seed: int, state: np.ndarray | None = None) -> dict:
    rng = np.random.default_rng(seed)
    return {"images": {c: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for c in ("corner4", "gripperPOV")},
            "state": (rng.normal(size=4) * 1.5).astype(np.float32) if state is None else state,
            "instruction": "open the drawer"}


def _by_hand(dataset: Path, policy: Policy):
    """The dataset's transform read from its info.json, and the same weights without any way back: what
    the network predicts in the dataset's units, then undone here with numpy."""
    vla = json.loads((dataset / "meta/info.json").read_text())["vla"]
    ns, na = vla["normalization"]["observation.state"], vla["normalization"]["action"]
    assert (ns["mode"], na["mode"]) == ("min_max", "min_max")
    dims = vla["action_mode"]["dims"]
    assert vla["action_mode"]["mode"] == "delta" and dims == [0, 1, 2, 3]
    raw = Policy(policy.config, NormalizationStats(policy.stats.state, policy.stats.action))  # no dataset block
    raw.load_state_dict(policy.state_dict())
    raw.eval()

    def robot_chunk(obs: dict, reference: np.ndarray) -> np.ndarray:
        s = obs["state"].astype(np.float64)
        data_state = ((s - np.asarray(ns["center"])) / np.asarray(ns["scale"])).astype(np.float32)
        data = raw.predict_chunk({**obs, "state": data_state}).astype(np.float64)  # dataset units
        a = np.clip(data, -1, 1) * np.asarray(na["scale"]) + np.asarray(na["center"])
        a[:, dims] += reference[dims]
        return a, data

    return robot_chunk


def test_policy_of_a_delta_dataset_returns_robot_units(delta_run):
    dataset, run = delta_run
    policy = Policy.from_pretrained(run)
    robot_chunk = _by_hand(dataset, policy)
    obs = _obs(1)
    chunk = policy.predict_chunk(obs)
    expected, data = robot_chunk(obs, obs["state"].astype(np.float64))
    np.testing.assert_allclose(chunk, expected, atol=1e-5)
    assert np.abs(chunk - data).max() > 0.5  # the way back is not the identity here
    # predict_chunk takes every step against the state it was predicted from; select_action adds each
    # queued delta to the state observed when it is executed
    policy.reset()
    a0 = policy.select_action(obs)
    later = _obs(1, obs["state"] + np.float32(0.25))
    a1 = policy.select_action(later)  # the chunk's 2nd step (n_action_steps = 2), no new prediction
    np.testing.assert_allclose(a0, expected[0], atol=1e-5)
    np.testing.assert_allclose(a1, expected[1] + 0.25, atol=1e-5)


def test_served_policy_of_a_delta_dataset_returns_robot_units(delta_run):
    dataset, run = delta_run
    predict, spec, meta = load_policy_service(run)
    robot_chunk = _by_hand(dataset, Policy.from_pretrained(run))
    obs = _obs(2)
    expected, _ = robot_chunk(obs, obs["state"].astype(np.float64))
    np.testing.assert_allclose(predict(obs), expected, atol=1e-5)
    with PolicyServer(predict, meta, spec, port=0) as srv:
        client = PolicyClient(srv.url)
        try:
            np.testing.assert_allclose(client.infer(obs)["actions"], expected, atol=1e-5)
        finally:
            client.close()


def test_normalization_json_carries_the_dataset_stats_and_transform(delta_run):
    dataset, run = delta_run
    norm = json.loads((run / "policy" / "normalization.json").read_text())
    ds = Dataset.open(dataset)
    # statistics are the dataset's stats.json (all 3 episodes), not recomputed from the 2 trained on
    for key, side in (("observation.state", "state"), ("action", "action")):
        for stat in ("min", "max", "mean", "std", "q01", "q99"):
            np.testing.assert_allclose(norm[side][stat], ds.stats[key][stat], rtol=1e-12, err_msg=f"{key}.{stat}")
    assert norm["format_version"] == 2
    assert norm["dataset"]["action_mode"] == {"mode": "delta", "dims": [0, 1, 2, 3], "reference": "observation.state"}
    assert norm["dataset"]["normalization"]["action"]["center"] == ds.info["vla"]["normalization"]["action"]["center"]


def test_training_refuses_a_transform_it_cannot_undo(delta_run, tmp_path):
    dataset, _ = delta_run
    bad = tmp_path / "bad"
    shutil.copytree(dataset, bad)
    info = json.loads((bad / "meta/info.json").read_text())
    info["vla"]["action_mode"]["reference"] = "observation.velocity"
    (bad / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"info\.json.*vla\.action_mode\.reference is 'observation\.velocity'"):
        _train(bad, tmp_path / "run")
    assert not (tmp_path / "cache").exists()  # refused before any work
    info["vla"]["action_mode"] = {"mode": "delta", "dims": None}
    info["vla"]["normalization"]["action"]["mode"] = "zscore"
    (bad / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="unknown normalization mode 'zscore'"):
        _train(bad, tmp_path / "run2")
