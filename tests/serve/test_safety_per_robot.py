"""One safety config per robot for a policy of several robots: CLI values, the server, the robot-side client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.models.test_embodiments import ROBOTS, policy, robot_obs
from vla.serve.client import PolicyClient
from vla.serve.policy_service import load_policy_service
from vla.serve.remote_policy import RemotePolicy
from vla.serve.safety import SafetyConfig
from vla.serve.safety_options import resolve_safety
from vla.serve.server import PolicyServer, ServeError

LIMIT = {"arm7": 0.05, "arm4": 0.3}  # each robot's gripper-kind dims are clipped to [-limit, limit]


def clip_config(name: str, limit: float) -> dict:
    state_dim, action_dim, _ = ROBOTS[name]
    return {"name": f"{name}_clip", "control_rate_hz": 10.0, "state_dim": state_dim,
            "dims": [{"name": f"a{i}", "kind": "gripper", "range": [-limit, limit]} for i in range(action_dim)]}


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("safety_configs")
    out = {}
    for name, limit in LIMIT.items():
        out[name] = folder / f"{name}.json"
        out[name].write_text(json.dumps(clip_config(name, limit)))
    return out


@pytest.fixture(scope="module")
def served_policy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_robots_safe") / "policy"
    p = policy("regression").eval()
    p.save(folder)
    return folder, p, load_policy_service(folder)


def test_every_robot_needs_its_own_config(configs, served_policy):
    _, _, (_, _, meta) = served_policy
    both = [f"arm7={configs['arm7']}", f"arm4={configs['arm4']}"]
    chosen = resolve_safety(both, meta)
    assert isinstance(chosen, dict) and sorted(chosen) == ["arm4", "arm7"]
    assert chosen["arm4"].action_dim == 4 and chosen["arm7"].action_dim == 7
    with pytest.raises(ValueError, match=r"no config for robot\(s\) \['arm4'\]"):
        resolve_safety(both[:1], meta)
    with pytest.raises(ValueError, match=r"several robots \['arm4', 'arm7'\]: give ROBOT=CONFIG"):
        resolve_safety([str(configs["arm7"])], meta)
    with pytest.raises(ValueError, match="unknown robot 'ur5'"):
        resolve_safety([*both, f"ur5={configs['arm4']}"], meta)
    with pytest.raises(ValueError, match="'arm7' is given twice"):
        resolve_safety([*both, both[0]], meta)
    with pytest.raises(ValueError, match=r"arm4=.*arm7.json: 7 action dims, robot 'arm4' has 4"):
        resolve_safety([f"arm4={configs['arm7']}", f"arm7={configs['arm7']}"], meta)


def test_a_one_robot_policy_takes_one_config_without_a_robot_name(configs):
    meta = {"action_dim": 4, "state_dim": 4}
    assert resolve_safety([str(configs["arm4"])], meta).name == "arm4_clip"
    assert resolve_safety([], meta) is None
    with pytest.raises(ValueError, match="drives one robot"):
        resolve_safety([f"arm4={configs['arm4']}"], meta)
    with pytest.raises(ValueError, match="7 action dims, the policy has 4"):
        resolve_safety([str(configs["arm7"])], meta)
    with pytest.raises(ValueError, match="state_dim 9, the policy has 5"):
        resolve_safety([str(configs["arm7"])], {"action_dim": 7, "state_dim": 5})


def test_the_server_filters_each_robot_with_its_own_limits(configs, served_policy):
    _, p, (predict, spec, meta) = served_policy

    def wild(obs):  # far outside both limits, with the served robot's own action dims
        return np.full((p.config.chunk, ROBOTS[obs["embodiment"]][1]), 5.0, np.float32)

    safety = {name: SafetyConfig.from_dict(clip_config(name, limit)) for name, limit in LIMIT.items()}
    with PolicyServer(wild, meta, spec, port=0, safety=safety) as srv, PolicyClient(srv.url) as client:
        announced = client.metadata["safety"]["embodiments"]
        assert {n: c["name"] for n, c in announced.items()} == {"arm7": "arm7_clip", "arm4": "arm4_clip"}
        for name, limit in LIMIT.items():
            reply = client.infer({**robot_obs(p, name, seed=2), "embodiment": name})
            assert reply["actions"].shape == (p.config.chunk, ROBOTS[name][1])
            assert np.allclose(reply["actions"], limit), name
            assert reply["safety"] is not None


def test_the_server_refuses_configs_that_do_not_cover_the_robots(served_policy):
    _, _, (predict, spec, meta) = served_policy
    one = SafetyConfig.from_dict(clip_config("arm4", 0.3))
    with pytest.raises(ServeError, match="one config per robot"):
        PolicyServer(predict, meta, spec, port=0, safety=one)
    with pytest.raises(ServeError, match=r"configs for \['arm4'\], this policy drives \['arm4', 'arm7'\]"):
        PolicyServer(predict, meta, spec, port=0, safety={"arm4": one})


def test_remote_policy_drives_one_robot_with_the_limits_announced_for_it(served_policy):
    _, p, (_, spec, meta) = served_policy

    def wild(obs):
        return np.full((p.config.chunk, ROBOTS[obs["embodiment"]][1]), -5.0, np.float32)

    safety = {name: SafetyConfig.from_dict(clip_config(name, limit)) for name, limit in LIMIT.items()}
    with PolicyServer(wild, meta, spec, port=0, safety=safety) as srv:
        with pytest.raises(ValueError, match=r"several robots \['arm4', 'arm7'\]: name one"):
            RemotePolicy(srv.url)
        remote = RemotePolicy(srv.url, embodiment="arm4")
        try:
            assert remote.config.action_dim == 4 and remote.config.state_dim == 4
            assert remote.config.cameras == ROBOTS["arm4"][2]
            assert remote.safety_filter is not None and remote.safety_filter.config.name == "arm4_clip"
            action = remote.select_action(robot_obs(p, "arm4", seed=3))
            assert action.shape == (4,) and np.allclose(action, -0.3)
            assert remote.records[-1]["violations"] == 0
        finally:
            remote.close()


def test_vla_serve_refuses_one_config_for_several_robots(configs, served_policy):
    folder, _, _ = served_policy
    r = subprocess.run([sys.executable, "-c", "from vla.cli import main; main()", "serve", "--policy", str(folder),
                        "--port", "0", "--safety", str(configs["arm7"])], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert "several robots ['arm4', 'arm7']: give ROBOT=CONFIG" in r.stderr
