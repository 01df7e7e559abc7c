"""Asynchronous chunk execution: one action per control tick from chunks computed in the background.

``ChunkExecutor(source, hold, config)`` turns a chunk source (``obs -> float32 [H, A]`` in robot units:
``policy.predict_chunk`` in process, ``lambda obs: client.infer(obs)["actions"]`` remotely) into one action
per control tick.

Time is counted in control steps: the observation given to ``step()`` number t is tagged t, and action k of
a chunk computed from it is intended for step t + k. When a chunk arrives at step s, its actions for steps
< s are dropped (never executed late) and the rest are merged into the queue from s on ("replace",
"average", or ACT "ensemble"). Every executed action records how many steps old its observation is.

* async: a single background worker runs the source; a request with the newest observation is sent when the
  queue holds fewer than ``threshold`` actions and no request is in flight. ``step()`` never waits on it.
* sync: when the queue is empty ``step()`` calls the source (blocking) and queues its first
  ``n_action_steps`` actions, like ``Policy.select_action``. In a real-time loop (``tick(obs,
  realtime=True)``, used by ``run_control_loop``) the ticks that passed during the call come back as hold
  records (idle frames) before the action, whose observation age then counts them.

The watchdog (``vla.serve.watchdog``) is armed by the first chunk. It trips when the source raised
(the next tick holds), when the request in flight is overdue (running median round trip +
``deadline_periods`` control periods) or when the queue ran empty: the queue is flushed and the hold action
is commanded until a fresh chunk arrives; a chunk requested before a deadline trip is discarded.
numpy and the standard library only: this runs on the robot side.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla.serve.watchdog import Watchdog

MODES = ("async", "sync")
MERGES = ("replace", "average", "ensemble")


@dataclass
class ExecutorConfig:
    mode: str = "async"                 # "async" | "sync"
    n_action_steps: int = 4             # actions used from each chunk (actions 0..n-1 of it)
    threshold: int = 4                  # async: request a chunk when fewer actions than this remain queued
    #                                     (always when the queue is empty, even with threshold 0)
    merge: str = "replace"              # overlap of queued and new actions: "replace" | "average" | "ensemble"
    ensemble_coeff: float = 0.01        # ensemble weights exp(-coeff * i), i = 0 the oldest prediction (ACT)
    control_period_s: float = 0.05      # the robot's control period
    deadline_periods: float = 2.0       # watchdog: allowed lateness of a reply beyond the expected round trip
    max_obs_age_steps: int | None = None  # never execute an action whose observation is older than this
    retry_min_s: float | None = None    # backoff after a failed request: min (default one control period) ...
    retry_max_s: float = 1.0            # ... doubling up to this
    rtt_window: int = 11                # round trips in the running median
    close_timeout_s: float = 1.0        # close() waits at most this long for the worker

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, got {self.merge!r}")
        if int(self.n_action_steps) < 1:
            raise ValueError(f"n_action_steps must be >= 1, got {self.n_action_steps}")
        if int(self.threshold) < 0:
            raise ValueError(f"threshold must be >= 0, got {self.threshold}")
        if not self.control_period_s > 0:
            raise ValueError(f"control_period_s must be > 0, got {self.control_period_s}")
        if not self.deadline_periods >= 0:
            raise ValueError(f"deadline_periods must be >= 0, got {self.deadline_periods}")
        if self.max_obs_age_steps is not None and int(self.max_obs_age_steps) < 0:
            raise ValueError(f"max_obs_age_steps must be None or >= 0, got {self.max_obs_age_steps}")


@dataclass
class ExecutedAction:
    """One control tick: what was executed and why."""

    action: np.ndarray                  # float32 [A]
    step: int                           # control step (0 = the episode's first tick)
    kind: str                           # "chunk" | "hold"
    obs_age_steps: int | None = None    # steps between the observation of its (newest) chunk and this step
    chunk_id: int | None = None         # the newest chunk that contributed
    idle: bool = False                  # a hold after the first chunk arrived (queue empty)
    watchdog: str | None = None         # why the hold: no_chunk_yet | queue_empty | deadline | source_error: ...
    time_s: float = 0.0                 # executor clock at the tick
    late_s: float = 0.0                 # run_control_loop: how late this tick started (0 when on time)
    chunk_ids: tuple[int, ...] = ()     # every chunk whose prediction for this step was merged in


@dataclass
class _Chunk:
    chunk_id: int
    obs_step: int                       # t0: action k is intended for step t0 + k
    actions: np.ndarray                 # float32 [n, A]


@dataclass
class _Entry:
    """The queued action for one step and the predictions it was made of (oldest first)."""

    action: np.ndarray
    preds: list[tuple[int, int, np.ndarray]] = field(default_factory=list)  # (chunk_id, obs_step, action)


@dataclass
class _Request:
    chunk_id: int
    generation: int
    obs: Any
    obs_step: int
    sent_at: float
    valid: bool = True                  # False once a deadline trip (or reset) disowned it


@dataclass
class _Reply:
    request: _Request
    chunk: Any = None
    error: BaseException | None = None
    done_at: float = 0.0


def _error_text(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
    return f"source_error: {type(e).__name__}" + (f": {msg}" if msg else "")


class ChunkExecutor:
    """See module docstring. ``hold(obs, last_action | None) -> float32 [A]`` gives the safe action."""

    def __init__(self, source: Callable[[Any], Any], hold: Callable[[Any, np.ndarray | None], Any],
                 config: ExecutorConfig | None = None, clock: Callable[[], float] = time.monotonic,
                 liveness: Callable[[], bool] | None = None) -> None:
        self.source = source
        # liveness() -> False (e.g. PolicyClient.connected once the server's socket closed) trips the watchdog
        # on that tick even when no request is in flight, so queued actions stop at once
        self.liveness = liveness
        self.hold = hold
        self.config = config or ExecutorConfig()
        self.clock = clock
        c = self.config
        self.watchdog = Watchdog(c.control_period_s, c.deadline_periods, window=c.rtt_window,
                                 retry_min_s=c.retry_min_s, retry_max_s=c.retry_max_s)
        self._cv = threading.Condition()
        self._pending: _Request | None = None     # handed to the worker, not yet taken
        self._inflight: _Request | None = None    # sent and not yet replied (worker busy)
        self._reply: _Reply | None = None         # posted by the worker, not yet processed
        self._closing = False
        self._closed = False
        self._next_id = 0
        self._generation = 0
        self._action_dim: int | None = None
        self._worker: threading.Thread | None = None
        if c.mode == "async":
            self._worker = threading.Thread(target=self._work, name="vla-chunk-executor", daemon=True)
            self._worker.start()
        self.reset()

    # lifecycle -----------------------------------------------------------------------------------------
    def reset(self) -> None:
        """New episode: flush the queue, forget chunks (a reply still in flight is discarded), step 0."""
        with self._cv:
            self._generation += 1
            if self._inflight is not None:
                self._inflight.valid = False
        self._queue: dict[int, _Entry] = {}
        self._t = 0
        self._last_action: np.ndarray | None = None
        self.watchdog.reset()
        self._stats = {"steps": 0, "chunk_steps": 0, "idle_frames": 0, "holds": 0, "requests": 0,
                       "failed_requests": 0, "chunks": 0, "discarded_chunks": 0, "dropped_actions": 0,
                       "late_ticks": 0, "late_s_max": 0.0, "late_s_total": 0.0}
        self._latencies: list[float] = []
        self._ages: dict[int, int] = {}
        self._last_error: str | None = None

    def close(self) -> None:
        """Stop the background worker (joins it within ``close_timeout_s``; idempotent)."""
        if self._closed:
            return
        self._closed = True
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=self.config.close_timeout_s)

    def __enter__(self) -> ChunkExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # the worker ------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._closing:
                    self._cv.wait()
                if self._closing:
                    return
                req, self._pending = self._pending, None
            reply = _Reply(req)
            try:
                reply.chunk = self.source(req.obs)
            except Exception as e:  # any failure of the source is the watchdog's business
                reply.error = e
            reply.done_at = self.clock()
            with self._cv:
                self._inflight = None
                self._reply = reply
                self._cv.notify_all()

    def wait_for_reply(self, timeout: float | None = None) -> bool:
        """Block until no request is in flight (True) or ``timeout`` passes (False). For tests and
        lock-step simulations of the async mode; a real-time loop never needs it."""
        with self._cv:
            return self._cv.wait_for(lambda: self._inflight is None, timeout=timeout)

    @property
    def in_flight(self) -> bool:
        with self._cv:
            return self._inflight is not None

    def _submit(self, obs: Any, now: float) -> None:
        req = _Request(self._next_id, self._generation, obs, self._t, now)
        self._next_id += 1
        self._stats["requests"] += 1
        with self._cv:
            self._inflight = self._pending = req
            self._cv.notify_all()

    # chunks ------------------------------------------------------------------------------------------------
    def _check_chunk(self, chunk: Any) -> np.ndarray:
        a = np.asarray(chunk, dtype=np.float32)
        if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
            raise ValueError(f"chunk must have shape [H, A], got {a.shape}")
        if self._action_dim is not None and a.shape[1] != self._action_dim:
            raise ValueError(f"chunk has {a.shape[1]} action dims, earlier chunks had {self._action_dim}")
        if not np.isfinite(a).all():
            raise ValueError("chunk has non-finite values")
        self._action_dim = a.shape[1]
        return a[: self.config.n_action_steps].copy()

    def _merge(self, ch: _Chunk, s: int, rebase: int | None = None) -> None:
        """Merge chunk ``ch`` arriving at step ``s``: actions for steps < s are dropped. ``rebase`` (sync
        mode) places action 0 at that step instead of at the chunk's own observation step."""
        c = self.config
        start = ch.obs_step if rebase is None else rebase
        for k, a in enumerate(ch.actions):
            t = start + k
            if t < s:
                self._stats["dropped_actions"] += 1
                continue
            old = self._queue.get(t)
            pred = (ch.chunk_id, ch.obs_step, a)
            if old is None or c.merge == "replace":
                self._queue[t] = _Entry(a.copy(), [pred])
            elif c.merge == "average":
                old.preds.append(pred)
                old.action = ((old.action.astype(np.float64) + a) / 2.0).astype(np.float32)
            else:  # ensemble: weighted mean of every prediction for t, weights exp(-coeff * i), i = 0 oldest
                old.preds.append(pred)
                preds = np.stack([p[2] for p in old.preds]).astype(np.float64)
                w = np.exp(-c.ensemble_coeff * np.arange(len(preds)))
                old.action = ((w[:, None] * preds).sum(0) / w.sum()).astype(np.float32)

    def _take_reply(self) -> _Reply | None:
        with self._cv:
            r, self._reply = self._reply, None
            return r

    def _process_reply(self, r: _Reply, s: int) -> None:
        req = r.request
        rtt = r.done_at - req.sent_at
        if req.generation != self._generation:
            return  # a request of an earlier episode
        if r.error is None:
            try:
                actions = self._check_chunk(r.chunk)
            except Exception as e:
                r.error = e
        if r.error is not None:
            self._stats["failed_requests"] += 1
            self._last_error = _error_text(r.error)
            self.watchdog.failure(r.done_at)
            if self.watchdog.armed:
                self._trip(self._last_error)
            return
        self.watchdog.success()
        self.watchdog.record_rtt(rtt)  # also when discarded: the median must follow a link that got slower
        self._latencies.append(rtt)
        if not req.valid:
            self._stats["discarded_chunks"] += 1
            return
        self._stats["chunks"] += 1
        self._merge(_Chunk(req.chunk_id, req.obs_step, actions), s)
        self.watchdog.arm()
        self.watchdog.clear()

    def _trip(self, reason: str, disown_inflight: bool = False) -> None:
        self._queue.clear()
        self.watchdog.trip(reason)
        if disown_inflight:
            with self._cv:
                if self._inflight is not None:
                    self._inflight.valid = False

    # ticks -------------------------------------------------------------------------------------------------
    def step(self, obs: Any) -> ExecutedAction:
        """The action to execute now, for the newest observation ``obs`` (one call per control tick)."""
        return self.tick(obs, realtime=False)[-1]

    def tick(self, obs: Any, realtime: bool = True) -> list[ExecutedAction]:
        """One real-time control tick. Async mode: ``[step(obs)]``. Sync mode with ``realtime``: when the
        tick blocked on the source, a hold record (idle frame) for every control period that passed during
        the call, then the action (its observation age counts those periods)."""
        if self._closed:
            raise RuntimeError("ChunkExecutor is closed")
        now = self.clock()
        s = self._t
        out: list[ExecutedAction] = []
        if self.liveness is not None and self.watchdog.armed and not self.liveness():
            self._trip("source_error: connection lost", disown_inflight=True)
        if self.config.mode == "async":
            r = self._take_reply()
            if r is not None:
                self._process_reply(r, s)
            with self._cv:
                req = self._inflight
            if req is not None and req.valid and req.generation == self._generation \
                    and self.watchdog.overdue(now - req.sent_at):
                self._trip("deadline", disown_inflight=True)
        elif s not in self._queue:
            out = self._sync_fill(obs, now, realtime)
            s = self._t
        entry = self._pop(s)
        if self.config.mode == "async":
            self._maybe_request(obs, now)
        out.append(self._record(obs, s, entry, now))
        return out

    def _pop(self, s: int) -> _Entry | None:
        for t in [t for t in self._queue if t < s]:  # cannot happen, but never leave a past action queued
            del self._queue[t]
        entry = self._queue.pop(s, None)
        limit = self.config.max_obs_age_steps
        if entry is not None and limit is not None:
            age = s - max(p[1] for p in entry.preds)
            if age > limit:
                self._queue.clear()
                self.watchdog.trip(f"deadline: observation {age} steps old > max_obs_age_steps {limit}")
                return None
        return entry

    def _maybe_request(self, obs: Any, now: float) -> None:
        if len(self._queue) >= max(1, self.config.threshold) or not self.watchdog.may_request(now):
            return
        with self._cv:
            busy = self._inflight is not None or self._reply is not None
        if not busy:
            self._submit(obs, now)

    def _sync_fill(self, obs: Any, now: float, realtime: bool) -> list[ExecutedAction]:
        """Sync mode, queue empty: call the source here (blocking) unless backing off after a failure."""
        if not self.watchdog.may_request(now):
            return []
        req = _Request(self._next_id, self._generation, obs, self._t, now)
        self._next_id += 1
        self._stats["requests"] += 1
        r = _Reply(req)
        try:
            r.chunk = self.source(obs)
        except Exception as e:
            r.error = e
        r.done_at = self.clock()
        missed = int(max(0.0, r.done_at - now) // self.config.control_period_s) if realtime else 0
        out = []
        for _ in range(missed):  # the ticks that passed while waiting: the world kept moving under hold
            out.append(self._record(obs, self._t, None, now))
        if r.error is None:
            self._process_reply_sync(r)
        else:
            self._process_reply(r, self._t)
        return out

    def _process_reply_sync(self, r: _Reply) -> None:
        try:
            actions = self._check_chunk(r.chunk)
        except Exception as e:
            r.error = e
            self._process_reply(r, self._t)
            return
        req = r.request
        self.watchdog.success()
        self.watchdog.record_rtt(r.done_at - req.sent_at)
        self._latencies.append(r.done_at - req.sent_at)
        self._stats["chunks"] += 1
        self._merge(_Chunk(req.chunk_id, req.obs_step, actions), self._t, rebase=self._t)
        self.watchdog.arm()
        self.watchdog.clear()

    def _record(self, obs: Any, s: int, entry: _Entry | None, now: float) -> ExecutedAction:
        st = self._stats
        if entry is not None:
            newest = max(entry.preds, key=lambda p: (p[1], p[0]))
            age = s - newest[1]
            rec = ExecutedAction(entry.action.copy(), s, "chunk", age, newest[0], False, None, now,
                                 chunk_ids=tuple(p[0] for p in entry.preds))
            st["chunk_steps"] += 1
            self._ages[age] = self._ages.get(age, 0) + 1
        else:
            wd = self.watchdog
            if not wd.armed:
                why = "no_chunk_yet"
            else:
                if wd.reason is None:
                    wd.trip("queue_empty", count=False)  # an idle frame, counted as such, not as a trip
                why = wd.reason
            action = np.asarray(self.hold(obs, self._last_action), dtype=np.float32).reshape(-1)
            if self._action_dim is not None and action.shape[0] != self._action_dim:
                raise ValueError(f"hold() returned {action.shape[0]} dims, chunks have {self._action_dim}")
            rec = ExecutedAction(action.copy(), s, "hold", None, None, wd.armed, why, now)
            st["holds"] += 1
            st["idle_frames"] += int(wd.armed)
        st["steps"] += 1
        self._last_action = rec.action
        self._t = s + 1
        return rec

    # reporting ---------------------------------------------------------------------------------------------
    def note_late(self, seconds: float) -> None:
        """run_control_loop: a tick started ``seconds`` after its scheduled time."""
        self._stats["late_ticks"] += 1
        self._stats["late_s_total"] += float(seconds)
        self._stats["late_s_max"] = max(self._stats["late_s_max"], float(seconds))

    def stats(self) -> dict[str, Any]:
        """Counts since the last reset(), chunk round-trip latency percentiles (s) and observation ages."""
        out: dict[str, Any] = dict(self._stats)
        wd = self.watchdog
        out["watchdog_trips"] = wd.trips
        out["watchdog_reasons"] = dict(wd.trips_by_reason)
        out["last_error"] = self._last_error
        lat = np.asarray(self._latencies, dtype=np.float64)
        out["latency_p50_s"] = float(np.percentile(lat, 50)) if lat.size else None
        out["latency_p99_s"] = float(np.percentile(lat, 99)) if lat.size else None
        out["expected_rtt_s"] = wd.expected_rtt()
        out["deadline_s"] = wd.deadline_s()
        n = sum(self._ages.values())
        out["obs_age_hist"] = {int(k): int(v) for k, v in sorted(self._ages.items())}
        out["obs_age_mean"] = (sum(k * v for k, v in self._ages.items()) / n) if n else None
        out["obs_age_max"] = max(self._ages) if n else None
        return out


def run_control_loop(env_step: Callable[[np.ndarray], tuple[Any, bool]], executor: ChunkExecutor, first_obs: Any,
                     rate_hz: float, max_steps: int, realtime: bool = True,
                     on_step: Callable[[ExecutedAction, Any], None] | None = None,
                     sleep: Callable[[float], None] = time.sleep) -> list[ExecutedAction]:
    """Drive ``env_step(action) -> (obs, done)`` at ``rate_hz`` (the executor's clock) for at most
    ``max_steps`` ticks or until done. A tick that starts late is run at once (no burst to catch up), its
    lateness recorded in ``rec.late_s`` and ``executor.stats()["late_ticks"]``. Sync mode: the ticks missed
    while the executor blocked on the source execute the hold action. ``realtime=False``: no sleeping, no
    missed ticks (lock-step simulation). ``on_step(rec, obs_after)`` is called after each executed action."""
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
    period = 1.0 / float(rate_hz)
    clock = executor.clock
    obs = first_obs
    records: list[ExecutedAction] = []
    next_tick = clock()
    while len(records) < max_steps:
        late = 0.0
        if realtime:
            now = clock()
            if now < next_tick:
                sleep(next_tick - now)
            else:
                late = now - next_tick
                if late > 0.1 * period:  # scheduling jitter below a tenth of a period is not "late"
                    executor.note_late(late)
                    next_tick = now  # run at once and re-anchor: no burst of ticks to catch up
                else:
                    late = 0.0
        recs = executor.tick(obs, realtime=realtime)
        if late and recs:
            recs[0].late_s = late
        done = False
        for rec in recs:
            if len(records) >= max_steps:
                break
            obs, done = env_step(rec.action)
            records.append(rec)
            if on_step is not None:
                on_step(rec, obs)
            if done:
                break
        if done:
            break
        next_tick += period * max(1, len(recs))
    return records
