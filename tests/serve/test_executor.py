"""ChunkExecutor: async vs sync idle frames, observation ages, stale actions dropped, the three merge modes.

Deterministic tests drive the executor step by step with a gated source (the test decides at which step a
reply arrives) and a fake clock; the real-time ones use run_control_loop with a sleeping source.
Chunks encode where they come from: row k of a chunk computed from the observation of step t0 is
[t0 + k, t0], so an executed action names the step it was intended for.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.serve.executor_fakes import FakeClock, Gate, hold, tagged_chunk
from vla.serve.executor import ChunkExecutor, ExecutorConfig, run_control_loop


def sleeping_source(delay_s: float, h: int = 8):
    def src(obs):
        time.sleep(delay_s)
        return tagged_chunk(int(obs), h)
    return src


def counting_env():
    state = {"t": 0}

    def env_step(action):
        state["t"] += 1
        return state["t"], False  # the observation is the index of the step it is given to
    return env_step


# ------------------------------------------------------------------------------------------- real time
@pytest.mark.parametrize("mode", ["async", "sync"])
def test_idle_frames_async_vs_sync_at_20hz_with_100ms_latency(mode):
    cfg = ExecutorConfig(mode=mode, n_action_steps=8, threshold=4, control_period_s=0.05)
    with ChunkExecutor(sleeping_source(0.1), hold, cfg) as ex:
        recs = run_control_loop(counting_env(), ex, 0, rate_hz=20, max_steps=40)
        stats = ex.stats()
    first = next(i for i, r in enumerate(recs) if r.kind == "chunk")
    idle_after_first = sum(r.kind == "hold" for r in recs[first:])
    assert len(recs) == 40
    assert idle_after_first == stats["idle_frames"]
    if mode == "async":
        assert idle_after_first == 0, "".join("c" if r.kind == "chunk" else "h" for r in recs)
        assert all(r.action[0] == r.step for r in recs if r.kind == "chunk")  # each action at its intended step
    else:
        assert idle_after_first > 0  # the synchronous baseline waits for every chunk
        assert stats["requests"] >= 4 and stats["watchdog_trips"] == 0
    assert stats["obs_age_max"] is not None and stats["latency_p50_s"] >= 0.1


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_obs_age_is_the_real_number_of_steps(mode):
    cfg = ExecutorConfig(mode=mode, n_action_steps=8, threshold=4, control_period_s=0.01)
    with ChunkExecutor(sleeping_source(0.025), hold, cfg) as ex:
        recs = run_control_loop(counting_env(), ex, 0, rate_hz=100, max_steps=50)
    chunk_recs = [r for r in recs if r.kind == "chunk"]
    assert chunk_recs
    for r in chunk_recs:
        assert r.obs_age_steps == r.step - int(r.action[1])  # obs of step t0 -> executed at step r.step
    if mode == "sync":  # waiting ~2.5 periods: the first action of each chunk is >= 2 steps old
        firsts = [r for r, prev in zip(recs[1:], recs, strict=False) if r.kind == "chunk" and prev.kind == "hold"]
        assert firsts and all(r.obs_age_steps >= 2 for r in firsts)
        assert [r.step for r in recs] == list(range(50))


def test_late_tick_is_recorded_not_skipped():
    cfg = ExecutorConfig(mode="async", n_action_steps=8, threshold=4, control_period_s=0.01)
    env = counting_env()
    n = {"i": 0}

    def slow_env(action):
        n["i"] += 1
        if n["i"] == 5:
            time.sleep(0.035)
        return env(action)

    with ChunkExecutor(sleeping_source(0.0), hold, cfg) as ex:
        recs = run_control_loop(slow_env, ex, 0, rate_hz=100, max_steps=12)
        stats = ex.stats()
    assert len(recs) == 12 and [r.step for r in recs] == list(range(12))
    assert stats["late_ticks"] >= 1 and recs[5].late_s >= 0.02
    assert stats["late_s_max"] >= 0.02


def test_run_control_loop_stops_at_done_and_calls_on_step():
    cfg = ExecutorConfig(mode="sync", n_action_steps=4, control_period_s=0.01)
    seen = []

    def env_step(action):
        return len(seen) + 1, len(seen) + 1 >= 7

    with ChunkExecutor(lambda obs: tagged_chunk(int(obs)), hold, cfg) as ex:
        recs = run_control_loop(env_step, ex, 0, rate_hz=100, max_steps=50, realtime=False,
                                on_step=lambda rec, obs: seen.append((rec.step, obs)))
    assert len(recs) == 7 and seen[-1] == (6, 7)


# --------------------------------------------------------------------------------------- deterministic
def test_sync_lockstep_is_the_action_queue():
    calls = []

    def src(obs):
        calls.append(obs)
        return tagged_chunk(int(obs))

    with ChunkExecutor(src, hold, ExecutorConfig(mode="sync", n_action_steps=4)) as ex:
        recs = [ex.step(t) for t in range(10)]
    assert calls == [0, 4, 8]
    assert [r.kind for r in recs] == ["chunk"] * 10
    assert [int(r.action[0]) for r in recs] == list(range(10))
    assert [r.obs_age_steps for r in recs] == [0, 1, 2, 3] * 2 + [0, 1]


def test_stale_actions_are_dropped_when_a_chunk_arrives_late():
    gate, clock = Gate(), FakeClock()
    cfg = ExecutorConfig(mode="async", n_action_steps=8, threshold=4, control_period_s=0.01)
    with ChunkExecutor(gate, hold, cfg, clock=clock) as ex, gate:
        recs = [ex.step(0)]
        assert gate.next_call() == 0
        for t in range(1, 5):
            clock.t = t * 0.01
            recs.append(ex.step(t))
        gate.release(ex, tagged_chunk(0))  # computed from step 0's observation, arrives at step 5
        clock.t = 0.05
        recs.append(ex.step(5))
        stats = ex.stats()
    assert [r.watchdog for r in recs[:5]] == ["no_chunk_yet"] * 5 and not any(r.idle for r in recs[:5])
    r = recs[5]
    assert r.kind == "chunk" and r.step == 5 and int(r.action[0]) == 5 and r.obs_age_steps == 5
    assert stats["dropped_actions"] == 5 and stats["chunks"] == 1


def test_a_fully_stale_chunk_executes_nothing():
    gate, clock = Gate(), FakeClock()
    cfg = ExecutorConfig(mode="async", n_action_steps=4, threshold=4, control_period_s=0.01)
    with ChunkExecutor(gate, hold, cfg, clock=clock) as ex, gate:
        ex.step(0)
        gate.next_call()
        for t in range(1, 6):
            ex.step(t)
        gate.release(ex, tagged_chunk(0))  # intended for steps 0..3, arrives at step 6
        r = ex.step(6)
        assert r.kind == "hold" and r.watchdog == "queue_empty" and r.idle  # a chunk arrived: armed, idle
        assert ex.stats()["dropped_actions"] == 4
        assert gate.next_call() == 6  # asks again with the newest observation


def _merge_run(merge: str, coeff: float = 0.5):
    """Step 0 asks for A (t0=0); B (t0=1) arrives before step 2; C (t0=2) before step 3. Constant chunks
    10, 20, 40 of six actions each make the merged numbers easy to check by hand."""
    gate = Gate()
    cfg = ExecutorConfig(mode="async", n_action_steps=6, threshold=100, merge=merge, ensemble_coeff=coeff)
    recs = []
    with ChunkExecutor(gate, hold, cfg) as ex, gate:
        recs.append(ex.step(0))
        for t, value in ((1, 10.0), (2, 20.0), (3, 40.0)):
            obs = gate.next_call()
            gate.release(ex, np.full((6, 2), value, np.float32))
            recs.append(ex.step(t))
            assert obs == t - 1
        gate.next_call()  # the request of step 3 is never answered
        recs += [ex.step(t) for t in range(4, 10)]
    return recs


def test_merge_replace():
    recs = _merge_run("replace")
    vals = [float(r.action[0]) if r.kind == "chunk" else None for r in recs]
    assert vals == [None, 10, 20, 40, 40, 40, 40, 40, None, None]  # C covers steps 2..7
    assert [r.chunk_id for r in recs[1:4]] == [0, 1, 2]
    assert recs[8].watchdog == "queue_empty" and recs[8].idle


def test_merge_average():
    recs = _merge_run("average")
    vals = [float(r.action[0]) if r.kind == "chunk" else None for r in recs]
    # step 2: (10+20)/2; steps 3-5: ((10+20)/2+40)/2; step 6: (20+40)/2 (A ends at 5); step 7: C alone
    assert vals == [None, 10, 15, 27.5, 27.5, 27.5, 30, 40, None, None]
    assert recs[3].chunk_ids == (0, 1, 2) and recs[3].chunk_id == 2 and recs[3].obs_age_steps == 1
    assert recs[6].chunk_ids == (1, 2)


def test_merge_ensemble_by_hand():
    c = 0.5
    w = np.exp(-c * np.arange(3))
    recs = _merge_run("ensemble", c)
    vals = [float(r.action[0]) if r.kind == "chunk" else None for r in recs]
    three = (w[0] * 10 + w[1] * 20 + w[2] * 40) / w.sum()  # oldest prediction has weight exp(0)
    expect = [None, 10, (10 + 20 * w[1]) / (1 + w[1]), three, three, three, (20 + 40 * w[1]) / (1 + w[1]), 40,
              None, None]
    assert vals[0] is None and vals[-2:] == [None, None]
    np.testing.assert_allclose(vals[1:8], expect[1:8], rtol=1e-6)


def _load_temporal_ensembler():
    path = Path(__file__).resolve().parents[2] / "src" / "vla" / "models" / "action_queue.py"
    spec = importlib.util.spec_from_file_location("_vla_action_queue", path)  # numpy only: no torch import
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.TemporalEnsembler


def test_ensemble_matches_models_temporal_ensembler():
    """A chunk every step with no latency: the executor's ensemble (action 0 of each chunk is always stale
    in async mode) equals TemporalEnsembler fed the same chunks without their first action."""
    TemporalEnsembler = _load_temporal_ensembler()
    rng = np.random.default_rng(0)
    h, coeff = 5, 0.3
    chunks = [rng.normal(size=(h, 3)).astype(np.float32) for _ in range(20)]
    src_calls = []

    def src(obs):
        src_calls.append(obs)
        return chunks[int(obs)]

    te = TemporalEnsembler(coeff, h - 1)
    cfg = ExecutorConfig(mode="async", n_action_steps=h, threshold=h, merge="ensemble", ensemble_coeff=coeff)
    with ChunkExecutor(src, lambda o, last: np.zeros(3, np.float32), cfg) as ex:
        first = ex.step(0)
        assert first.kind == "hold"
        for t in range(1, 20):
            assert ex.wait_for_reply(5)
            rec = ex.step(t)
            ref = te.next(lambda t=t: chunks[t - 1][1:])
            assert rec.kind == "chunk"
            np.testing.assert_allclose(rec.action, ref, rtol=1e-5, atol=1e-6)
    assert src_calls == list(range(19)) or src_calls == list(range(20))


def test_reset_flushes_and_discards_the_reply_of_the_last_episode():
    gate, clock = Gate(), FakeClock()
    cfg = ExecutorConfig(mode="async", n_action_steps=8, threshold=4, control_period_s=0.01)
    with ChunkExecutor(gate, hold, cfg, clock=clock) as ex, gate:
        ex.step(0)
        gate.next_call()
        gate.release(ex, tagged_chunk(0))
        assert ex.step(1).kind == "chunk"
        ex.step(2)
        ex.step(3)
        ex.step(4)  # 3 left < threshold: asks (obs 4)
        assert gate.next_call() == 4
        ex.reset()
        gate.release(ex, tagged_chunk(4))  # the old episode's reply: must not be used
        r = ex.step(100)
        assert r.step == 0 and r.kind == "hold" and r.watchdog == "no_chunk_yet"
        assert ex.stats()["steps"] == 1 and ex.stats()["chunks"] == 0
        assert gate.next_call() == 100  # a fresh request for the new episode
        gate.release(ex, tagged_chunk(0))
        r = ex.step(101)
        assert r.kind == "chunk" and r.step == 1 and int(r.action[0]) == 1


def test_max_obs_age_steps_refuses_old_actions():
    gate, clock = Gate(), FakeClock()
    cfg = ExecutorConfig(mode="async", n_action_steps=8, threshold=0, control_period_s=0.01, max_obs_age_steps=3)
    with ChunkExecutor(gate, hold, cfg, clock=clock) as ex, gate:
        ex.step(0)
        gate.next_call()
        gate.release(ex, tagged_chunk(0))
        recs = [ex.step(t) for t in range(1, 7)]
    assert [r.kind for r in recs] == ["chunk"] * 3 + ["hold"] * 3  # ages 1, 2, 3, then 4 > 3
    assert recs[3].watchdog.startswith("deadline") and recs[3].idle


@pytest.mark.parametrize("bad", [np.zeros(3, np.float32), np.full((4, 2), np.nan, np.float32), "nonsense",
                                 np.zeros((0, 2), np.float32)])
def test_a_malformed_chunk_is_a_source_error(bad):
    with ChunkExecutor(lambda obs: bad, hold, ExecutorConfig(mode="sync", n_action_steps=4)) as ex:
        r = ex.step(0)
        assert r.kind == "hold" and ex.stats()["failed_requests"] == 1
        assert "source_error" in ex.stats()["last_error"]


def test_close_is_idempotent_and_quick_with_a_hung_source():
    release = threading.Event()
    cfg = ExecutorConfig(mode="async", close_timeout_s=0.2)
    ex = ChunkExecutor(lambda obs: release.wait(5), hold, cfg)
    ex.step(0)
    t0 = time.monotonic()
    ex.close()
    ex.close()
    assert time.monotonic() - t0 < 0.5
    release.set()
    with pytest.raises(RuntimeError):
        ex.step(1)


def test_config_is_validated():
    for kw in ({"mode": "fast"}, {"merge": "max"}, {"n_action_steps": 0}, {"control_period_s": 0},
               {"deadline_periods": -1}, {"max_obs_age_steps": -2}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            ExecutorConfig(**kw)
