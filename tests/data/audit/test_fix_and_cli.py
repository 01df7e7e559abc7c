"""`--fix drop|repair` write a new dataset (provenance records what was done); the CLI runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from vla.data import Dataset
from vla.data.audit import audit, fix_dataset, repair_arrays
from vla.data.audit import synthetic as S
from vla.data.audit.commands import register


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    eps = S.dataset(8, seed=1)
    # episode 2: two timestamps swapped + one duplicated; episode 4: NaN in the action
    ts = eps[2].timestamps.copy()
    ts[10], ts[11] = ts[11], ts[10]
    ts[30] = ts[29]
    eps[2].timestamps = ts
    eps[4].action = eps[4].action.copy()
    eps[4].action[20, 1] = np.nan
    # episode 6: a 2-frame gap
    keep = np.ones(len(eps[6].state), bool)
    keep[40:42] = False
    e6 = eps[6]
    e6.state, e6.action, e6.images = e6.state[keep], e6.action[keep], e6.images[keep]
    e6.timestamps = e6.timestamps[keep]
    return S.write(eps, tmp_path_factory.mktemp("audit") / "broken")


def test_audit_dataset_finds_injected_problems(broken):
    rep = audit(broken)
    assert rep.episode(2).has("time.non_monotonic")
    assert rep.episode(2).has("time.duplicate_timestamp")
    assert rep.episode(4).has("modality.nan")
    assert rep.episode(6).has("time.gap")
    assert set(rep.bad_episodes()) == {2, 4}
    assert 0 < rep.score < 1


def test_fix_drop(broken, tmp_path):
    summary = fix_dataset(broken, tmp_path / "dropped", "drop")
    assert summary.dropped == [2, 4]
    ds = Dataset.open(tmp_path / "dropped")
    assert ds.num_episodes == 6
    prov = ds.episodes[0].provenance
    assert prov["extra"]["audit"]["mode"] == "drop"
    assert prov["extra"]["audit"]["source_episode"] == 0
    assert prov["collector_id"] == "synthetic.reacher"
    assert audit(ds).bad_episodes() == []


def test_fix_repair(broken, tmp_path):
    summary = fix_dataset(broken, tmp_path / "repaired", "repair")
    assert set(summary.repaired) == {2, 4, 6}
    ds = Dataset.open(tmp_path / "repaired")
    assert ds.num_episodes == 8
    rep = audit(ds)
    for e in (2, 4):
        assert not rep.episode(e).findings, [f.line() for f in rep.episode(e).findings]
    # the filled frames repeat the previous picture: the audit says so, nothing else remains
    assert [f.type for f in rep.episode(6).findings] == ["modality.dropped_frames"]
    assert rep.episode(6).findings[0].frames == (40, 42)
    rec = ds.episode(2).provenance["extra"]["audit"]
    assert rec["mode"] == "repair" and any("sorted" in r for r in rec["repairs"])
    assert "time.non_monotonic" in rec["findings_before"]
    assert ds.episode(6).length == Dataset.open(broken).episode(6).length + 2


def test_repair_arrays_interpolates_gap():
    ts = np.array([0, 1, 2, 5, 6], float) / 10
    cols = {"action": np.arange(5, dtype=np.float32)[:, None] * np.array([[1.0, 2.0]], np.float32)}
    ts2, cols2, _, done = repair_arrays(ts, cols, {}, fps=10)
    assert np.allclose(ts2, np.arange(7) / 10)
    assert np.allclose(cols2["action"][3], [2 + 1 / 3, 2 * (2 + 1 / 3)], atol=1e-5)
    assert done


def test_cli_json_out_and_fix(broken, tmp_path):
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    out = tmp_path / "report.json"
    r = CliRunner().invoke(app, ["audit", str(broken), "--json", "--out", str(out), "--fix", "drop",
                                 "--to", str(tmp_path / "dst")])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["fix"]["dropped"] == [2, 4]
    assert json.loads(out.read_text())["counts"]["modality.nan"] == 1
    r = CliRunner().invoke(app, ["audit", str(broken)])
    assert r.exit_code == 0 and "time.non_monotonic" in r.output


def test_frame_count_mismatch_is_reported():
    """A camera stream with fewer frames than the table is a finding, not a crash."""
    from vla.data.audit.episode import EpisodeArrays
    from vla.data.audit.modality_checks import check_frame_counts

    ep = EpisodeArrays(0, np.arange(10) / 20, np.zeros((10, 2)), np.zeros((10, 2)), {"cam": np.zeros((7, 4, 4))})
    f = check_frame_counts(ep)
    assert f and f[0].type == "modality.frame_count_mismatch" and "7 frames" in f[0].explanation
