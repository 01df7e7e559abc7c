"""The executor's watchdog: a source that dies (server killed) or hangs -> hold within one control period,
never a stale action afterwards, recovery when the source comes back, bounded retries; and a hypothesis
property over random delays, hangs and failures: every executed action is the hold action or an action
intended for exactly the step it is executed at, and none comes from a chunk requested before a trip.

Chunks encode where they come from: row k of a chunk computed from step t0's observation is [t0 + k, t0].
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.serve.executor_fakes import HOLD, FakeClock, Gate, hold, tagged_chunk
from vla.serve.executor import ChunkExecutor, ExecutorConfig, run_control_loop
from vla.serve.watchdog import Watchdog

ERRORS = [ConnectionError("connection closed"), TimeoutError("timed out"), OSError("broken pipe"),
          RuntimeError("server went away")]


def counting_env():
    state = {"t": 0}

    def env_step(action):
        state["t"] += 1
        return state["t"], False
    return env_step


# ---------------------------------------------------------------------------------------- source dies
@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_source_error_holds_on_the_next_tick_and_flushes_the_queue(error):
    gate, clock = Gate(), FakeClock()
    cfg = ExecutorConfig(mode="async", n_action_steps=8, threshold=6, control_period_s=0.01)
    with ChunkExecutor(gate, hold, cfg, clock=clock) as ex, gate:
        ex.step(0)
        gate.next_call()
        gate.release(ex, tagged_chunk(0))
        recs = [ex.step(1), ex.step(2)]  # 6 left after step 2 ... 5 left: asks with obs 2
        assert gate.next_call() == 2
        gate.release(ex, error)  # the server is killed: the request in flight fails
        recs += [ex.step(t) for t in range(3, 8)]
        stats = ex.stats()
    assert [r.kind for r in recs[:2]] == ["chunk", "chunk"]
    assert all(r.kind == "hold" for r in recs[2:])  # the old chunk still covered steps 3..7: never executed
    assert recs[2].watchdog.startswith(f"source_error: {type(error).__name__}")
    assert recs[2].idle and np.array_equal(recs[2].action, HOLD)
    assert stats["watchdog_trips"] == 1 and stats["failed_requests"] == 1
    assert stats["watchdog_reasons"] == {"source_error": 1}


def test_killed_server_in_real_time_hold_within_one_period_and_recovery():
    period = 0.02
    lock = threading.Lock()
    state = {"calls": 0, "fail_at": None, "fail_times": []}

    def src(obs):  # calls 0-2 work, 3-5 fail (server down), then it is back
        with lock:
            n = state["calls"]
            state["calls"] += 1
        time.sleep(0.01)
        if 3 <= n <= 5:
            state["fail_times"].append(time.monotonic())
            raise ConnectionError("server killed")
        return tagged_chunk(int(obs))

    cfg = ExecutorConfig(mode="async", n_action_steps=8, threshold=4, control_period_s=period,
                         retry_min_s=0.02, retry_max_s=0.05)
    with ChunkExecutor(src, hold, cfg) as ex:
        recs = run_control_loop(counting_env(), ex, 0, rate_hz=1 / period, max_steps=60)
        stats = ex.stats()
    fail = state["fail_times"][0]
    after = [r for r in recs if r.time_s > fail]
    first_hold = after[0]
    assert first_hold.kind == "hold" and first_hold.watchdog.startswith("source_error: ConnectionError")
    assert first_hold.time_s - fail <= period + 0.01  # the very next tick (10 ms scheduling slack)
    trip_step = first_hold.step
    resumed = [r for r in recs if r.step > trip_step and r.kind == "chunk"]
    assert resumed, "never recovered"
    assert all(int(r.action[1]) >= trip_step for r in resumed)  # only chunks asked for after the trip
    assert all(r.action[0] == r.step for r in recs if r.kind == "chunk")
    assert stats["failed_requests"] == 3 and stats["watchdog_trips"] == 1


# ----------------------------------------------------------------------------------------- source hangs
def test_hanging_source_trips_at_expected_latency_plus_deadline_then_recovers():
    gate, clock = Gate(), FakeClock()
    p = 0.01
    cfg = ExecutorConfig(mode="async", n_action_steps=8, threshold=4, control_period_s=p, deadline_periods=2.5)
    recs = []
    with ChunkExecutor(gate, hold, cfg, clock=clock) as ex, gate:
        def step(t):  # the executor's step t at t * 10 ms
            clock.t = t * p
            recs.append(ex.step(t))
            assert recs[-1].step == t

        step(0)
        assert gate.next_call() == 0
        step(1)
        clock.t = 0.02
        gate.release(ex, tagged_chunk(0))  # round trip 20 ms: deadline 20 + 2.5 x 10 = 45 ms
        for t in range(2, 10):  # step 4 leaves 3 < 4 queued: asks at 40 ms, and that call hangs
            step(t)
        assert gate.next_call() == 4
        assert ex.stats()["deadline_s"] == pytest.approx(0.045)
        clock.t = 0.10
        gate.release(ex, tagged_chunk(4))  # the hung call returns after the trip: disowned, discarded
        step(10)
        assert gate.next_call() == 10  # a fresh request after the trip, with a fresh observation
        step(11)
        clock.t = 0.115
        gate.release(ex, tagged_chunk(10))
        for t in range(12, 15):
            step(t)
        stats = ex.stats()
    by_step = {r.step: r for r in recs}
    assert all(by_step[t].kind == "chunk" and int(by_step[t].action[1]) == 0 for t in range(2, 8))
    assert by_step[8].watchdog == "queue_empty"  # chunk 0 ran out; 40 ms outstanding < 45 ms: not overdue
    assert by_step[9].watchdog == "deadline"  # 50 ms > 45 ms: the first tick past the deadline
    assert by_step[10].watchdog == "deadline" and by_step[11].watchdog == "deadline"  # stale reply unused
    assert all(by_step[t].kind == "chunk" and int(by_step[t].action[1]) == 10 for t in (12, 13, 14))
    assert stats["discarded_chunks"] == 1 and stats["watchdog_reasons"] == {"deadline": 1}
    assert stats["idle_frames"] == 4 and stats["holds"] == 6


def test_overdue_request_flushes_a_queue_that_still_has_actions():
    gate, clock = Gate(), FakeClock()
    p = 0.01
    cfg = ExecutorConfig(mode="async", n_action_steps=8, threshold=8, control_period_s=p, deadline_periods=1.5)
    with ChunkExecutor(gate, hold, cfg, clock=clock) as ex, gate:
        ex.step(0)
        gate.next_call()
        clock.t = 0.01
        gate.release(ex, tagged_chunk(0))  # round trip 10 ms; deadline 10 + 10 ms
        recs = []
        for t in range(1, 6):  # step 1 asks again (7 < 8 left) and that request hangs
            clock.t = t * p
            recs.append(ex.step(t))
    assert [r.kind for r in recs] == ["chunk", "chunk", "chunk", "hold", "hold"]  # 30 ms > 25 ms at step 4
    assert recs[3].watchdog == "deadline" and recs[4].watchdog == "deadline"


def test_hang_in_real_time_holds_within_one_period_of_the_deadline():
    period = 0.01
    state = {"n": 0, "hang_sent": None}

    def src(obs):
        state["n"] += 1
        if state["n"] == 4:
            state["hang_sent"] = time.monotonic()
            time.sleep(0.15)
        else:
            time.sleep(0.02)
        return tagged_chunk(int(obs))

    cfg = ExecutorConfig(mode="async", n_action_steps=8, threshold=4, control_period_s=period, deadline_periods=2.0)
    with ChunkExecutor(src, hold, cfg) as ex:
        recs = run_control_loop(counting_env(), ex, 0, rate_hz=1 / period, max_steps=50)
        stats = ex.stats()
    trip = next(r for r in recs if r.watchdog == "deadline")
    deadline = stats["expected_rtt_s"] + 2 * period
    waited = trip.time_s - state["hang_sent"]
    assert deadline <= waited + 1e-3 and waited <= deadline + period + 0.01
    assert all(r.action[0] == r.step for r in recs if r.kind == "chunk")
    assert all(int(r.action[1]) >= trip.step for r in recs if r.kind == "chunk" and r.step > trip.step)
    assert any(r.kind == "chunk" for r in recs if r.step > trip.step)  # recovered


# ---------------------------------------------------------------------------------------- retries
def test_failed_requests_are_retried_with_bounded_backoff():
    clock = FakeClock()
    calls = []

    def src(obs):
        calls.append(clock.t)
        if len(calls) > 1:
            raise OSError("no route to host")
        return tagged_chunk(int(obs), 2)

    p = 0.01
    cfg = ExecutorConfig(mode="async", n_action_steps=2, threshold=2, control_period_s=p, retry_max_s=0.08)
    with ChunkExecutor(src, hold, cfg, clock=clock) as ex:
        for t in range(100):  # one second
            clock.t = t * p
            ex.step(t)
            assert ex.wait_for_reply(5)
        stats = ex.stats()
    gaps = np.diff(calls[1:])
    assert 10 <= stats["failed_requests"] <= 16  # not a tight loop (that would be ~99)
    assert gaps[:4].tolist() == pytest.approx([0.01, 0.02, 0.04, 0.08])  # doubling from one period ...
    assert gaps.max() <= 0.08 + p + 1e-9  # ... capped at retry_max_s (rounded up to a tick)
    assert stats["watchdog_trips"] == 1


def test_sync_mode_source_error_holds_and_retries_later():
    clock = FakeClock()
    n = {"i": 0}

    def src(obs):
        n["i"] += 1
        if n["i"] in (2, 3):
            raise TimeoutError("client timeout")
        return tagged_chunk(int(obs), 2)

    with ChunkExecutor(src, hold, ExecutorConfig(mode="sync", n_action_steps=2, control_period_s=0.01),
                       clock=clock) as ex:
        recs = []
        for t in range(8):
            clock.t = t * 0.01
            recs.append(ex.step(t))
    # step 2: fails; step 3 (backoff 10 ms over): fails again; step 4: backing off 20 ms, no call; step 5: back
    assert [r.kind for r in recs] == ["chunk", "chunk", "hold", "hold", "hold", "chunk", "chunk", "chunk"]
    assert all(r.watchdog.startswith("source_error: TimeoutError: client timeout") for r in recs[2:5])
    assert n["i"] == 5


def test_watchdog_unit():
    wd = Watchdog(0.05, 2.0, window=3)
    assert wd.deadline_s() is None and not wd.overdue(100.0)
    wd.arm()
    for s in (0.1, 0.3, 0.2):
        wd.record_rtt(s)
    assert wd.expected_rtt() == pytest.approx(0.2) and wd.deadline_s() == pytest.approx(0.3)
    assert wd.overdue(0.31) and not wd.overdue(0.29)
    assert [wd.failure(0.0) for _ in range(7)] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert not wd.may_request(0.5) and wd.may_request(1.0)
    assert wd.trip("deadline") and not wd.trip("deadline") and wd.trips == 1
    wd.reset()
    assert wd.expected_rtt() == pytest.approx(0.2) and not wd.armed and wd.reason is None


# ---------------------------------------------------------------------------------------- property
EVENT = st.one_of(st.tuples(st.just("ok"), st.integers(0, 5)), st.tuples(st.just("hang"), st.integers(6, 12)),
                  st.tuples(st.just("fail"), st.integers(0, 3)))


# VLA_EXECUTOR_EXAMPLES=1000 for a longer search; 60 examples take ~1 s.
@settings(max_examples=int(os.environ.get("VLA_EXECUTOR_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(EVENT, min_size=1, max_size=12), merge=st.sampled_from(["replace", "average", "ensemble"]),
       h=st.integers(2, 8), threshold=st.integers(0, 8), n_steps=st.integers(10, 40))
def test_no_stale_action_is_ever_executed(events, merge, h, threshold, n_steps):
    """Random per-request outcomes: a reply after d steps, a hang (past the deadline), or a failure after d
    steps. Whatever happens, an executed action is the hold action or was intended for this very step, and
    no chunk requested before a trip is executed after it."""
    p = 0.01
    gate, clock = Gate(), FakeClock()
    cfg = ExecutorConfig(mode="async", n_action_steps=h, threshold=threshold, merge=merge, control_period_s=p,
                         deadline_periods=2.0, retry_min_s=p, retry_max_s=4 * p)
    script = iter(events * 10)
    pending = None  # (release step, reply)
    recs = []
    with ChunkExecutor(gate, hold, cfg, clock=clock) as ex, gate:
        for s in range(n_steps):
            clock.t = s * p
            if pending is not None and pending[0] <= s:
                gate.release(ex, pending[1])
                pending = None
            recs.append(ex.step(s))
            if pending is None and ex.in_flight:
                obs = gate.next_call()
                kind, d = next(script, ("ok", 1))
                reply = tagged_chunk(int(obs), h) if kind != "fail" else ConnectionError("down")
                pending = (s + max(1, d), reply)
    trips = [r.step for r, prev in zip(recs, [None, *recs], strict=False)
             if r.watchdog and r.watchdog.split(":")[0] in ("deadline", "source_error")
             and (prev is None or prev.watchdog != r.watchdog)]
    event(f"trips: {bool(trips)}, chunks executed: {any(r.kind == 'chunk' for r in recs)}")
    for r in recs:
        if r.kind == "hold":
            assert np.array_equal(r.action, HOLD) and r.obs_age_steps is None
            continue
        assert float(r.action[0]) == r.step  # intended for this step (every merged prediction was)
        t0 = int(round(float(r.action[1]))) if merge == "replace" else None
        if t0 is not None:
            assert r.obs_age_steps == r.step - t0
            assert not any(t0 < trip <= r.step for trip in trips), (t0, r.step, trips)
        assert r.obs_age_steps >= 1  # async: never the action of the observation's own step
