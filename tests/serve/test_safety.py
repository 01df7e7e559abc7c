"""Example tests of the safety layer: shipped configs, config errors, the MetaWorld Sawyer cases."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
import yaml

from vla.serve.safety import (
    SafetyConfig,
    SafetyConfigError,
    SafetyFilter,
    SafetyReport,
    load_safety_config,
    summarize_reports,
)

SHIPPED = resources.files("vla.serve").joinpath("safety_configs")


def _sawyer() -> SafetyFilter:
    return SafetyFilter(SafetyConfig.for_metaworld_sawyer())


# ---------------------------------------------------------------------- shipped configs
def test_metaworld_config_loads_and_round_trips_through_json():
    cfg = SafetyConfig.for_metaworld_sawyer()
    assert (cfg.name, cfg.action_dim, cfg.state_dim, cfg.control_rate_hz) == ("metaworld_sawyer", 4, 4, 80.0)
    d = cfg.to_dict()
    assert SafetyConfig.from_dict(json.loads(json.dumps(d))).to_dict() == d


def test_workspace_contains_every_mt50_task_bounds():
    """Recompute the union of mocap/hand bounds over all MT50 tasks from metaworld itself."""
    pytest.importorskip("metaworld")
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS, MT50_V3

    ws = SafetyConfig.for_metaworld_sawyer().workspace
    low, high = np.array(ws.low), np.array(ws.high)
    lows, highs = [], []
    for task in MT50_V3:
        env = ALL_V3_ENVIRONMENTS[task]()
        try:
            for lo, hi in ((env.mocap_low, env.mocap_high), (env.hand_low, env.hand_high)):
                assert np.all(low <= lo) and np.all(hi <= high), (task, lo, hi, low, high)
                lows.append(lo)
                highs.append(hi)
            assert env.action_scale == pytest.approx(0.01)  # the config's ee_delta scale
        finally:
            env.close()
    # and the shipped box is exactly the union (as its comment says)
    np.testing.assert_allclose(low, np.min(lows, axis=0))
    np.testing.assert_allclose(high, np.max(highs, axis=0))


def test_example_7dof_config_loads():
    cfg = load_safety_config(SHIPPED.joinpath("example_7dof_arm.yaml"))
    assert cfg.action_dim == 8 and cfg.state_dim == 8
    assert [d.kind for d in cfg.dims] == ["joint_position"] * 7 + ["gripper"]
    f = SafetyFilter(cfg)
    q = np.array([0, 0, 0, -1.5, 0, 1.5, 0, 0.04])
    out, rep = f.filter(q, q)  # holding still is inside every limit
    assert out.tobytes() == q.astype(np.float32).tobytes() and not rep.modified
    far = q.copy()
    far[0] = 10.0  # beyond the limit and the velocity limit at once
    out, rep = f.filter(far, q)
    assert abs(out[0] - 0.0) <= 2.175 / 15 + 1e-6 and "velocity.j1" in rep.active and "position.j1" in rep.active


def test_yaml_and_json_both_load(tmp_path):
    d = SafetyConfig.for_metaworld_sawyer().to_dict()
    (tmp_path / "c.json").write_text(json.dumps(d))
    (tmp_path / "c.yml").write_text(yaml.safe_dump(d))
    assert load_safety_config(tmp_path / "c.json").to_dict() == d
    assert load_safety_config(tmp_path / "c.yml").to_dict() == d
    (tmp_path / "c.toml").write_text("")
    with pytest.raises(SafetyConfigError, match="suffix"):
        load_safety_config(tmp_path / "c.toml")


# ---------------------------------------------------------------------- config errors
def _base() -> dict:
    return {"name": "t", "control_rate_hz": 10.0, "state_dim": 2,
            "dims": [{"name": "j", "kind": "joint_position", "state_index": 0, "position": [-1.0, 1.0],
                      "velocity": 1.0}, {"name": "g", "kind": "gripper", "range": [0.0, 1.0]}]}


@pytest.mark.parametrize(("edit", "match"), [
    (lambda d: d.update(bogus=1), r"top level: unknown key\(s\) bogus; known keys: name"),
    (lambda d: d["dims"][0].update(velocty=1.0), r"dims\[0\] \(kind joint_position\): unknown key\(s\) velocty"),
    (lambda d: d["dims"][0].update(position=[1.0, -1.0]), r"dims\[0\]\.position: must be ordered"),
    (lambda d: d["dims"][0].update(velocity=float("inf")), r"dims\[0\]\.velocity: must be finite"),
    (lambda d: d["dims"][0].update(velocity=-1.0), r"dims\[0\]\.velocity: must be > 0"),
    (lambda d: d["dims"][0].update(state_index=5), r"dims\[0\]\.state_index: 5 is out of range"),
    (lambda d: d["dims"][0].update(soft_margin=1.5), r"dims\[0\]\.soft_margin"),
    (lambda d: d["dims"][1].update(kind="gripperr"), r"dims\[1\]\.kind: must be one of"),
    (lambda d: d["dims"][1].update(hold=3.0), r"dims\[1\]\.hold: 3.0 is outside range"),
    (lambda d: d.update(action_dim=3), r"action_dim: is 3 but dims lists 2"),
    (lambda d: d.update(workspace={"low": [0, 0, 0], "high": [1, 1, 1]}), r"workspace: needs three ee_delta"),
    (lambda d: d.update(control_rate_hz="fast"), r"control_rate_hz: must be a number"),
])
def test_config_errors_name_the_field(edit, match):
    d = _base()
    edit(d)
    with pytest.raises(SafetyConfigError, match=match):
        SafetyConfig.from_dict(d)


def test_file_errors_name_the_file(tmp_path):
    d = _base()
    d["dims"][0]["jerk"] = "lots"
    p = tmp_path / "arm.yaml"
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(SafetyConfigError, match=r"arm\.yaml: dims\[0\]\.jerk: must be a number"):
        load_safety_config(p)
    p.write_text("name: [unclosed")
    with pytest.raises(SafetyConfigError, match=r"arm\.yaml: not valid YAML"):
        load_safety_config(p)
    p.write_text("!!python/object/apply:os.system ['true']")  # safe_load only
    with pytest.raises(SafetyConfigError, match="not valid YAML"):
        load_safety_config(p)


# ---------------------------------------------------------------------- MetaWorld Sawyer behaviour
def test_motion_below_the_table_is_cut_back_along_the_segment():
    f = _sawyer()
    state = np.array([0.0, 0.6, 0.005, 1.0], dtype=np.float32)
    out, rep = f.filter(np.array([1.0, 0.0, -1.0, 0.5], dtype=np.float32), state)
    assert "keep_out.table" in rep.active and rep.modified and not rep.held
    assert out[0] == pytest.approx(-out[2]) and 0 < out[0] < 1  # same direction, shorter
    z_end = float(state[2]) + 0.01 * float(out[2])
    assert 0.0 < z_end <= 0.005
    assert out[3] == np.float32(0.5)


def test_motion_out_of_the_workspace_is_cut():
    f = _sawyer()
    state = np.array([0.498, 0.6, 0.2, 1.0], dtype=np.float32)
    out, rep = f.filter(np.array([1.0, 0.0, 0.0, -1.0], dtype=np.float32), state)
    assert "workspace.x" in rep.active
    assert float(state[0]) + 0.01 * float(out[0]) <= 0.5 + 1e-9
    # already outside: may come back in, never further out
    outside = np.array([0.55, 0.6, 0.2, 1.0], dtype=np.float32)
    f.reset()
    out, _ = f.filter(np.array([0.3, 0.0, 0.0, -1.0], dtype=np.float32), outside)
    assert out[0] <= 0.0
    f.reset()
    back, rep = f.filter(np.array([-0.3, 0.0, 0.0, -1.0], dtype=np.float32), outside)
    assert back[0] == np.float32(-0.3) and not rep.modified


def test_hold_action_keeps_the_gripper_and_nonfinite_becomes_hold():
    f = _sawyer()
    state = np.array([0.0, 0.6, 0.2, 0.3], dtype=np.float32)
    np.testing.assert_array_equal(f.hold_action(state), [0, 0, 0, -1])  # before any command: the config's hold
    f.filter(np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32), state)  # grasp
    np.testing.assert_array_equal(f.hold_action(state), [0, 0, 0, 1])
    out, rep = f.filter(np.array([np.nan, 0.0, np.inf, 0.0], dtype=np.float32), state)
    np.testing.assert_array_equal(out, [0, 0, 0, 1])
    assert rep.held and rep.modified and rep.active[0] == "nonfinite"
    assert rep.to_dict() == {"active": ["nonfinite"], "modified": True, "held": True}
    f.reset()
    np.testing.assert_array_equal(f.hold_action(state), [0, 0, 0, -1])


def test_inside_action_passes_bit_for_bit():
    f = _sawyer()
    state = np.array([0.0, 0.6, 0.2, 1.0], dtype=np.float32)
    for a in ([0.1, -0.2, 0.05, -1.0], [0.3, -0.2, 0.05, 0.7], [0.3, 0.1, -0.2, 0.7]):
        a32 = np.array(a, dtype=np.float32)
        out, rep = f.filter(a32, state)
        assert out.tobytes() == a32.tobytes() and rep == SafetyReport()
        state = state.copy()
        state[:3] += 0.01 * a32[:3]


def test_acceleration_limit_smooths_a_reversal():
    f = _sawyer()
    state = np.array([0.0, 0.6, 0.2, 1.0], dtype=np.float32)
    f.filter(np.array([1.0, 0.0, 0.0, 0.0]), state)
    out, rep = f.filter(np.array([-1.0, 0.0, 0.0, 0.0]), state)
    # 40 m/s^2 at 80 Hz: the velocity may change by 0.5 m/s per step = 0.625 action units
    assert out[0] == pytest.approx(1.0 - 0.625) and "acceleration.dx" in rep.active


def test_filter_chunk_rolls_forward_and_commits_only_when_asked():
    f = _sawyer()
    state = np.array([0.0, 0.6, 0.03, 1.0], dtype=np.float32)
    chunk = np.tile(np.array([0.0, 0.0, -1.0, 1.0], dtype=np.float32), (6, 1))
    out, reports = f.filter_chunk(chunk, state)
    z = float(state[2]) + 0.01 * np.cumsum(out[:, 2].astype(np.float64))
    assert np.all(z > 0) and any("keep_out.table" in r.active for r in reports)
    assert f.filter_chunk(chunk, state)[0].tobytes() == out.tobytes()  # history untouched
    f.filter_chunk(chunk, state, commit=True)
    nxt, _ = f.filter(np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32), state)
    assert nxt[2] < 1.0  # committed: the last (negative) velocity limits the reversal
    s = summarize_reports(reports)
    assert s["steps"] == 6 and s["modified"] >= 1 and s["active"]["keep_out.table"] >= 1
    json.dumps(s)


def test_shape_errors():
    f = _sawyer()
    with pytest.raises(ValueError, match="action must have shape"):
        f.filter(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="state must have 4"):
        f.filter(np.zeros(4), np.zeros(3))
    with pytest.raises(ValueError, match="needs the measured state"):
        f.filter(np.zeros(4), None)
