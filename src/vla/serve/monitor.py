"""FailureMonitor: one failure score per control step from the raw signals, and a calibrated alarm.

Each raw signal (``vla.serve.monitor_signals``) is put on a common scale by how unusual it is on
successful rollouts: ``z = max(0, (x - median) / spread)`` with ``spread`` the distance from the median to
the 90th percentile. The step's score is the weighted mean of the z values, smoothed over time (an
exponential moving average). The alarm threshold is conformal: on held-out successful episodes, the
``ceil((n + 1)(1 - alpha)) / n`` quantile of each episode's highest score, so a new successful episode from
the same distribution raises the alarm with probability at most ``alpha``.

``calibrate(episodes, alpha)`` takes the raw signals of successful episodes (lists of per-step dicts, as
``SignalTracker.on_step`` returns), fits the scales on half of them and the threshold on the other half.
A calibration made from policy rollouts (``vla monitor calibrate``) also carries the signal settings, the
feature bank of the ``ood`` signal, the number of samples of the ``spread`` signal and where it came from, so
``FailureMonitor.from_calibration`` rebuilds the same monitor in eval, in the server and on a robot.
numpy only (robot side). Saved as JSON.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla.errors import VlaError
from vla.serve.monitor_signals import SIGNALS, FeatureBank, SignalConfig, SignalTracker


class MonitorError(VlaError, ValueError):
    """A monitor calibration cannot be made or read (names what is wrong)."""


@dataclass(frozen=True)
class MonitorCalibration:
    center: dict[str, float]          # per-signal median on successful steps
    spread: dict[str, float]          # per-signal (q90 - median), floored
    weights: dict[str, float]         # per-signal weight of its z value in the score
    threshold: float                  # alarm when the smoothed score exceeds this
    alpha: float                      # the false-alarm rate on successful episodes it was calibrated for
    smoothing: float = 0.3            # EMA factor of the score (1 = no smoothing)
    episodes: dict[str, int] = field(default_factory=dict)  # how many episodes fitted scales / threshold
    signal_config: dict[str, Any] | None = None  # SignalConfig fields (None: the defaults)
    feature_bank: dict[str, Any] | None = None   # {"mean": [D], "precision": [D][D]} for ``ood`` (None: no ood)
    samples: int = 0                             # extra chunks sampled per query for ``spread`` (0: none)
    source: dict[str, Any] = field(default_factory=dict)  # what it was calibrated on (policy, tasks, seeds, ...)

    def config(self) -> SignalConfig:
        c = dict(self.signal_config or {})
        for k in ("state_dims", "motion_dims"):
            if c.get(k) is not None:
                c[k] = tuple(int(i) for i in c[k])
        return SignalConfig(**c)

    def bank(self) -> FeatureBank | None:
        if self.feature_bank is None:
            return None
        return FeatureBank(np.asarray(self.feature_bank["mean"]), np.asarray(self.feature_bank["precision"]))

    def z(self, raw: dict[str, float]) -> dict[str, float]:
        return {k: max(0.0, (raw.get(k, 0.0) - self.center[k]) / self.spread[k]) for k in self.weights}

    def step_score(self, raw: dict[str, float]) -> float:
        z = self.z(raw)
        total = sum(self.weights.values())
        return sum(self.weights[k] * z[k] for k in self.weights) / total if total > 0 else 0.0

    def scores(self, episode: list[dict[str, float]]) -> np.ndarray:
        """Smoothed score per step of one episode's raw signals (what the monitor would have said)."""
        out, s = np.zeros(len(episode)), 0.0
        for i, raw in enumerate(episode):
            s = self.smoothing * self.step_score(raw) + (1 - self.smoothing) * s if i else self.step_score(raw)
            out[i] = s
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "calibration") -> MonitorCalibration:
        try:
            cal = cls(center={k: float(v) for k, v in d["center"].items()},
                      spread={k: float(v) for k, v in d["spread"].items()},
                      weights={k: float(v) for k, v in d["weights"].items()}, threshold=float(d["threshold"]),
                      alpha=float(d["alpha"]), smoothing=float(d.get("smoothing", 0.3)),
                      episodes={k: int(v) for k, v in d.get("episodes", {}).items()},
                      signal_config=d.get("signal_config"), feature_bank=d.get("feature_bank"),
                      samples=int(d.get("samples", 0)), source=dict(d.get("source") or {}))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MonitorError(f"{source}: not a monitor calibration ({type(exc).__name__}: {exc}); expected "
                               "center, spread, weights, threshold, alpha") from None
        if not math.isfinite(cal.threshold) or not 0 < cal.alpha < 1 or cal.samples < 0:
            raise MonitorError(f"{source}: threshold must be finite, alpha in (0, 1) and samples >= 0; got "
                               f"threshold={cal.threshold}, alpha={cal.alpha}, samples={cal.samples}")
        try:
            cal.config()
        except (TypeError, ValueError) as exc:
            raise MonitorError(f"{source}: signal_config: {exc}; expected window, state_dims, motion_dims, "
                               "state_eps, eps") from None
        try:
            cal.bank()
        except (KeyError, TypeError, ValueError) as exc:
            raise MonitorError(f"{source}: feature_bank: {exc}; expected mean [D] and precision [D][D]") from None
        unknown = sorted(set(cal.weights) - set(SIGNALS))
        if unknown or set(cal.weights) - set(cal.center) or set(cal.weights) - set(cal.spread):
            bad = unknown or sorted(cal.weights)
            raise MonitorError(f"{source}: weights name unknown or unscaled signal(s) {bad}; known: {list(SIGNALS)}")
        return cal

    def save(self, path: str | Path) -> None:
        """Write JSON atomically (a temporary file beside it, flushed, then a rename); refuses a threshold that
        is not finite (JSON has no infinity)."""
        if not math.isfinite(self.threshold):
            raise MonitorError(f"threshold is {self.threshold}: too few held-out successes for alpha={self.alpha}")
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with open(tmp, "w") as f:
                f.write(json.dumps(self.to_dict(), indent=1, allow_nan=False))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | Path) -> MonitorCalibration:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise MonitorError(f"{path}: cannot read the monitor calibration ({exc})") from None
        return cls.from_dict(d, str(path))


def conformal_threshold(episode_max: np.ndarray, alpha: float) -> float:
    """The ceil((n + 1)(1 - alpha))-th smallest of n scores (inf when n is too small for that alpha)."""
    x = np.sort(np.asarray(episode_max, np.float64))
    n = len(x)
    k = math.ceil((n + 1) * (1 - alpha))
    return float("inf") if k > n else float(x[k - 1])


def calibrate(episodes: list[list[dict[str, float]]], alpha: float = 0.1, weights: dict[str, float] | None = None,
              smoothing: float = 0.3) -> MonitorCalibration:
    """Scales from the even-numbered successful episodes, the conformal threshold from the odd ones."""
    if not 0 < alpha < 1:
        raise MonitorError(f"alpha: expected a rate in (0, 1), got {alpha}")
    if len(episodes) < 4:
        raise MonitorError(f"calibration needs at least 4 successful episodes, got {len(episodes)}")
    weights = dict(weights) if weights is not None else dict.fromkeys(SIGNALS, 1.0)
    unknown = sorted(set(weights) - set(SIGNALS))
    if unknown:
        raise MonitorError(f"weights: unknown signal(s) {unknown}; known: {list(SIGNALS)}")
    fit, held = episodes[0::2], episodes[1::2]
    steps = [raw for ep in fit for raw in ep]
    center, spread = {}, {}
    for k in weights:
        x = np.array([raw.get(k, 0.0) for raw in steps], np.float64)
        med = float(np.median(x)) if x.size else 0.0
        q90 = float(np.quantile(x, 0.9)) if x.size else 0.0
        center[k] = med
        spread[k] = max(q90 - med, 1e-3 * max(abs(med), 1.0), 1e-9)
    scaled = MonitorCalibration(center, spread, weights, float("inf"), alpha, smoothing)
    maxima = np.array([scaled.scores(ep).max() if ep else 0.0 for ep in held])
    return MonitorCalibration(center, spread, weights, conformal_threshold(maxima, alpha), alpha, smoothing,
                              {"scales": len(fit), "threshold": len(held)})


@dataclass(frozen=True)
class MonitorStep:
    score: float
    alarm: bool
    signals: dict[str, float]


class FailureMonitor:
    """Signals + calibrated score + alarm per step (an uncalibrated monitor reports signals, score 0)."""

    def __init__(self, calibration: MonitorCalibration | None = None, config: SignalConfig | None = None,
                 bank: FeatureBank | None = None, action_scale: np.ndarray | None = None) -> None:
        self.calibration = calibration
        self.tracker = SignalTracker(config, bank, action_scale)
        self.reset()

    @classmethod
    def from_calibration(cls, calibration: MonitorCalibration) -> FailureMonitor:
        """The monitor a calibration was made for: its signal settings and feature bank."""
        return cls(calibration, calibration.config(), calibration.bank())

    def reset(self) -> None:
        """A new episode."""
        self.tracker.reset()
        self._score: float | None = None
        self.alarms = 0
        self.first_alarm_step: int | None = None
        self._steps = 0

    def restart(self) -> None:
        """Forget the signals' history and the smoothed score (after a recovery), keeping the episode's step
        count and alarm counts."""
        self.tracker.reset()
        self._score = None

    def skip(self) -> None:
        """A control step the monitor does not judge (a recovery motion): only the step count advances."""
        self._steps += 1

    def on_chunk(self, chunk: np.ndarray, step: int, features: np.ndarray | None = None,
                 samples: np.ndarray | None = None) -> None:
        self.tracker.on_chunk(chunk, step, features, samples)

    def step(self, state: np.ndarray, action: np.ndarray) -> MonitorStep:
        raw = self.tracker.on_step(state, action)
        cal = self.calibration
        if cal is None:
            self._steps += 1
            return MonitorStep(0.0, False, raw)
        s = cal.step_score(raw)
        self._score = s if self._score is None else cal.smoothing * s + (1 - cal.smoothing) * self._score
        alarm = self._score > cal.threshold
        if alarm:
            self.alarms += 1
            if self.first_alarm_step is None:
                self.first_alarm_step = self._steps
        self._steps += 1
        return MonitorStep(float(self._score), bool(alarm), raw)


class RequestMonitor:
    """A FailureMonitor fed from a policy server's request stream (one per connection).

    A request brings the state at the client's control step ``step`` (the observation's optional ``"step"``;
    without it, the previous request's step + ``steps_per_request``, the policy's ``n_action_steps``). The
    actions executed since the previous request are taken to be the first ``step - previous step`` actions of
    the previous reply, from states interpolated linearly between the two observed states: the server sees
    one state per request, so back-and-forth motion within one request interval is invisible to it.
    ``on_request`` feeds those steps and returns the score and alarm as of the new request; ``on_reply``
    gives the new chunk (and features, samples) to the monitor.
    """

    def __init__(self, calibration: MonitorCalibration, steps_per_request: int) -> None:
        if steps_per_request < 1:
            raise MonitorError(f"steps_per_request: expected >= 1, got {steps_per_request}")
        self.monitor = FailureMonitor.from_calibration(calibration)
        self.steps_per_request = steps_per_request
        self.reset()

    def reset(self) -> None:
        self.monitor.reset()
        self._state: np.ndarray | None = None
        self._chunk: np.ndarray | None = None
        self._step = 0
        self._last = MonitorStep(0.0, False, {})

    def on_request(self, state: np.ndarray, step: int | None = None) -> tuple[int, MonitorStep]:
        state = np.asarray(state, np.float64).reshape(-1)
        if self._state is None or self._chunk is None:
            t = 0 if step is None else int(step)
        else:
            t = self._step + self.steps_per_request if step is None else int(step)
            n = t - self._step
            if n <= 0:  # the client went back in time: a new episode without a reset flag
                self.monitor.reset()
            for j in range(max(n, 0)):
                s = self._state + (state - self._state) * (j / n)
                a = self._chunk[min(j, len(self._chunk) - 1)]
                self._last = self.monitor.step(s, a)
        self._state, self._step = state, t
        return t, self._last

    def on_reply(self, chunk: np.ndarray, features: np.ndarray | None = None,
                 samples: np.ndarray | None = None) -> None:
        self._chunk = np.asarray(chunk, np.float64)
        self.monitor.on_chunk(self._chunk, self._step, features, samples)
