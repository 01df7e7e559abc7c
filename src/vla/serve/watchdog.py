"""The executor's watchdog: when to stop trusting the chunks and command the hold action.

Armed once the first chunk has arrived. It trips (the executor flushes its queue and holds) when the
source raised, when the request in flight is overdue (outstanding longer than the running median of past
round trips plus ``deadline_periods`` control periods), or when the queue ran empty. It also paces retries
after failures with a bounded exponential backoff. numpy-free: plain Python, used by ``executor.py``.
"""

from __future__ import annotations

import math
import statistics
from collections import deque


class Watchdog:
    """State only; the executor asks it questions and tells it what happened. Not thread-safe by itself
    (the executor calls it from the control thread only)."""

    def __init__(self, control_period_s: float, deadline_periods: float = 2.0, window: int = 11,
                 retry_min_s: float | None = None, retry_max_s: float = 1.0) -> None:
        if control_period_s <= 0:
            raise ValueError(f"control_period_s must be > 0, got {control_period_s}")
        if deadline_periods < 0:
            raise ValueError(f"deadline_periods must be >= 0, got {deadline_periods}")
        self.control_period_s = float(control_period_s)
        self.deadline_periods = float(deadline_periods)
        self.retry_min_s = float(retry_min_s if retry_min_s is not None else control_period_s)
        self.retry_max_s = max(float(retry_max_s), self.retry_min_s)
        self._rtts: deque[float] = deque(maxlen=max(1, int(window)))  # kept across episodes: a link property
        self.reset()

    def reset(self) -> None:
        """New episode: disarmed, not tripped, no backoff; the round-trip history is kept."""
        self.armed = False
        self.reason: str | None = None
        self.trips = 0
        self.trips_by_reason: dict[str, int] = {}
        self.consecutive_failures = 0
        self.next_request_at = -math.inf

    # round trips -------------------------------------------------------------------------------------
    def record_rtt(self, seconds: float) -> None:
        self._rtts.append(float(seconds))

    def expected_rtt(self) -> float | None:
        """Running median of the last ``window`` round trips (None before the first)."""
        return statistics.median(self._rtts) if self._rtts else None

    def deadline_s(self) -> float | None:
        """How long a request may be outstanding before the watchdog trips (None: not known yet)."""
        exp = self.expected_rtt()
        return None if exp is None else exp + self.deadline_periods * self.control_period_s

    def overdue(self, outstanding_s: float) -> bool:
        d = self.deadline_s()
        return self.armed and d is not None and outstanding_s > d

    # tripping ----------------------------------------------------------------------------------------
    def arm(self) -> None:
        self.armed = True

    def trip(self, reason: str, count: bool = True) -> bool:
        """Enter (or change) the tripped state; True when this is a new trip (counted unless ``count``
        is False: an empty queue is an idle frame, reported as such, not a trip)."""
        if reason == self.reason:
            return False
        self.reason = reason
        if not count:
            return True
        self.trips += 1
        key = reason.split(":", 1)[0]
        self.trips_by_reason[key] = self.trips_by_reason.get(key, 0) + 1
        return True

    def clear(self) -> None:
        """A fresh chunk arrived: execution resumes."""
        self.reason = None

    # retries -----------------------------------------------------------------------------------------
    def failure(self, now: float) -> float:
        """A request failed at ``now``; returns the backoff before the next one may be sent."""
        self.consecutive_failures += 1
        backoff = min(self.retry_max_s, self.retry_min_s * 2.0 ** (self.consecutive_failures - 1))
        self.next_request_at = now + backoff
        return backoff

    def success(self) -> None:
        self.consecutive_failures = 0
        self.next_request_at = -math.inf

    def may_request(self, now: float) -> bool:
        return now >= self.next_request_at
