"""A two-robot policy served over loopback: the metadata lists both robots and each observation names its robot."""

from __future__ import annotations

import numpy as np
import pytest

from tests.models.test_embodiments import ROBOTS, policy, robot_obs
from vla.serve.client import PolicyClient, ServerError
from vla.serve.obs_schema import ObservationError
from vla.serve.policy_service import load_policy_service
from vla.serve.server import PolicyServer


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_robots") / "policy"
    p = policy("regression").eval()
    p.save(folder)
    predict, spec, metadata = load_policy_service(folder)
    srv = PolicyServer(predict, metadata, spec, port=0).start()
    yield srv, p
    srv.stop()


def test_metadata_lists_each_robot(served):
    srv, _ = served
    with PolicyClient(srv.url) as client:
        robots = client.metadata["embodiments"]
        assert sorted(robots) == sorted(ROBOTS)
        for name, (s, a, cams) in ROBOTS.items():
            assert robots[name]["state_dim"] == s and robots[name]["action_dim"] == a
            assert sorted(robots[name]["cameras"]) == sorted(cams) and len(robots[name]["action_names"]) == a
        assert client.spec is not None and sorted(client.spec.robots) == sorted(ROBOTS)


def test_each_robot_is_served_its_own_actions(served):
    srv, p = served
    with PolicyClient(srv.url) as client:
        for name, (_, a, _) in ROBOTS.items():
            obs = {**robot_obs(p, name, seed=1), "embodiment": name}
            actions = client.infer(obs)["actions"]
            assert actions.shape == (p.config.chunk, a)
            assert np.allclose(actions, p.predict_chunk(obs), atol=1e-5)


def test_a_missing_or_unknown_robot_is_refused_and_the_connection_stays_usable(served):
    srv, p = served
    obs = robot_obs(p, "arm4")
    with PolicyClient(srv.url) as client:
        with pytest.raises(ObservationError, match=r"embodiment.*\['arm4', 'arm7'\]"):
            client.infer(obs)  # the client checks first
        client.validate = False
        with pytest.raises(ServerError, match="embodiment"):
            client.infer({**obs, "embodiment": "ur5"})
        with pytest.raises(ServerError, match=r"observation\['state'\]: expected a float array of shape \[9\]"):
            client.infer({**robot_obs(p, "arm4"), "embodiment": "arm7",
                          "images": robot_obs(p, "arm7")["images"]})
        assert client.infer({**obs, "embodiment": "arm4"})["actions"].shape == (p.config.chunk, 4)
