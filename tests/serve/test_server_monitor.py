"""`vla serve --monitor`: each reply carries the monitor's score and alarm as extra keys; RequestMonitor fed
one state per request matches the per-step monitor when the motion between requests is straight."""

from __future__ import annotations

import numpy as np
import pytest

from vla.serve.client import PolicyClient, ServerError
from vla.serve.monitor import FailureMonitor, MonitorCalibration, RequestMonitor
from vla.serve.obs_schema import ObservationSpec
from vla.serve.server import PolicyServer

SPEC = ObservationSpec({"cam": (8, 8, 3)}, 4)
CAL = MonitorCalibration(center={"stall": 4.0, "inconsistency": 0.0}, spread={"stall": 1.0, "inconsistency": 1.0},
                         weights={"stall": 1.0, "inconsistency": 1.0}, threshold=1.0, alpha=0.1, smoothing=0.5,
                         signal_config={"window": 4, "state_dims": [0, 1, 2], "motion_dims": [0, 1, 2]})


def obs(state, **extra) -> dict:
    return {"images": {"cam": np.zeros((8, 8, 3), np.uint8)}, "state": np.asarray(state, np.float32),
            "instruction": "push", **extra}


def model(o: dict) -> np.ndarray:
    return np.tile(np.array([0.5, 0.0, 0.0, 1.0], np.float32), (6, 1))  # always asks to move along x


@pytest.fixture
def served():
    srv = PolicyServer(model, {"policy": {"name": "fake"}, "n_action_steps": 3}, SPEC, port=0, monitor=CAL,
                       features=lambda: None).start()
    yield srv
    srv.stop()


def test_replies_carry_score_and_alarm_and_a_stuck_robot_raises_the_alarm(served):
    with PolicyClient(served.url) as client:
        meta = client.metadata
        assert meta["monitor"] == {"threshold": 1.0, "alpha": 0.1, "signals": ["stall", "inconsistency"],
                                   "steps_per_request": 3}
        replies = [client.infer(obs([0.0, 0.6, 0.2, 1.0])) for _ in range(6)]  # the arm never moves
        for i, r in enumerate(replies):
            assert r["actions"].shape == (6, 4)  # the usual keys are unchanged
            assert set(r["monitor"]) == {"score", "alarm", "step", "alarms", "first_alarm_step"}
            assert r["monitor"]["step"] == 3 * i and "monitor_ms" in r["server_timing"]
        assert not replies[0]["monitor"]["alarm"] and replies[-1]["monitor"]["alarm"]
        assert replies[-1]["monitor"]["score"] > 1.0
        # a new episode (reset) starts the monitor afresh; the client's own step clock is honoured
        client.reset()
        r = client.infer(obs([0.0, 0.6, 0.2, 1.0], step=0))
        assert r["monitor"] == {"score": 0.0, "alarm": False, "step": 0, "alarms": 0, "first_alarm_step": None}
        moved = client.infer(obs([0.05, 0.6, 0.2, 1.0], step=10))
        assert moved["monitor"]["step"] == 10 and not moved["monitor"]["alarm"]
    with PolicyClient(served.url, validate=False) as raw:  # the server itself refuses a bad step
        with pytest.raises(ServerError, match=r"observation\['step'\]: expected an integer >= 0"):
            raw.infer(obs([0.0, 0.6, 0.2, 1.0], step=-1))


def test_a_server_without_monitor_replies_as_before():
    srv = PolicyServer(model, {"policy": {"name": "fake"}}, SPEC, port=0).start()
    try:
        with PolicyClient(srv.url) as client:
            assert client.metadata["monitor"] is None
            r = client.infer(obs([0.0, 0.0, 0.0, 1.0]))
            assert set(r) == {"actions", "server_timing", "safety"}
    finally:
        srv.stop()


def test_request_monitor_equals_the_per_step_monitor_on_straight_motion():
    rng = np.random.default_rng(0)
    per_step, per_request = FailureMonitor.from_calibration(CAL), RequestMonitor(CAL, steps_per_request=3)
    state = np.array([0.0, 0.6, 0.2, 1.0])
    velocity = np.array([0.01, -0.005, 0.0, 0.0])
    expected, got = [], []
    for req in range(8):
        t = 3 * req
        chunk = rng.uniform(-1, 1, (6, 4))
        _, rec = per_request.on_request(state + t * velocity)
        got.append(rec.score)  # the score after the steps executed since the previous request
        per_request.on_reply(chunk)
        per_step.on_chunk(chunk, t)
        for j in range(3):
            score = per_step.step(state + (t + j) * velocity, chunk[j]).score
        expected.append(score)
    assert np.allclose(got[1:], expected[:-1]) and max(expected) > 0
