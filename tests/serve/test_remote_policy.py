"""RemotePolicy (client -> executor -> safety filter) acts like the in-process policy; eval --server runs."""

from __future__ import annotations

import numpy as np

from tests.models.helpers import obs, stats, tiny_config
from vla.models import Policy
from vla.serve.policy_service import load_policy_service
from vla.serve.remote_policy import RemotePolicy
from vla.serve.safety import SafetyConfig
from vla.serve.server import PolicyServer


def test_remote_policy_matches_in_process_select_action(tmp_path):
    folder = tmp_path / "policy"
    Policy(tiny_config(), stats()).save(folder)
    predict, spec, meta = load_policy_service(folder)
    local = Policy.from_pretrained(folder)
    with PolicyServer(predict, meta, spec, port=0) as srv:
        remote = RemotePolicy(srv.url, safety=False)
        for episode in range(2):
            local.reset()
            remote.reset()
            for t in range(7):  # 7 steps with 2 actions per chunk: 4 requests, queue carried across them
                o = obs(local.config, seed=episode * 10 + t)
                assert np.allclose(remote.select_action(o), local.select_action(o), atol=1e-5)
        assert [r["kind"] for r in remote.records] == ["chunk"] * 7
        remote.close()


def test_remote_policy_filters_with_the_announced_safety_config(tmp_path):
    folder = tmp_path / "policy"
    Policy(tiny_config(), stats()).save(folder)
    predict, spec, meta = load_policy_service(folder)

    def dive(o):  # a policy that drives the hand straight down into the table
        return np.tile(np.array([0.0, 0.0, -1.0, 0.0], np.float32), (4, 1))

    with PolicyServer(dive, meta, spec, port=0, safety=SafetyConfig.for_metaworld_sawyer()) as srv:
        remote = RemotePolicy(srv.url)
        o = obs(tiny_config())
        o["state"] = np.array([0.0, 0.6, 0.003, 1.0], np.float32)  # 3 mm above the table plane
        a = remote.select_action(o)
        assert a[2] * 0.01 >= -0.003 - 1e-6  # cut back at the table
        # the server cut the chunk before it left (its reply says so); the robot-side filter then had nothing to do
        assert "keep_out.table" in str(remote.server_safety[-1])
        assert remote.records[-1]["violations"] == 0
        remote.close()
