"""PolicyServer: a websocket + msgpack policy server that openpi's unchanged client can drive.

Per connection: the server sends its metadata first; then each binary frame is one observation and
each reply is ``{"actions": float32 [H, A] (robot units, after the safety filter), "server_timing": {...},
"safety": {...} | None}``; with a failure monitor the reply also has ``"monitor": {"score", "alarm", "step",
"alarms", "first_alarm_step"}`` (``vla.serve.monitor.RequestMonitor``, one per connection). Bad input gets
a text frame ``error: <field>: <what was expected>`` and the connection stays open. For a policy with
context cameras (metadata ``context_cameras``) each connection keeps the first frames of its episode (its
first observation, then each one sent with ``reset: true``) and passes them as ``obs["context_images"]``. A policy of
several robots can have one safety config per robot: each observation's ``embodiment`` picks the filter, and the
metadata announces them as ``"safety": {"embodiments": {robot: config}}``. The API key
(``Authorization: Api-Key KEY``) is compared in constant time during
the HTTP handshake, before any frame is read; ``GET /healthz`` answers JSON on the same port.

Threads, not an event loop: each connection has its own handler thread (websockets' threaded server),
which decodes, validates, runs inference under one model lock and sends the reply itself, so a request
costs two thread wake-ups on the server (frame read, handler) instead of four for an event loop that hands
inference to a worker thread and back. Pings are answered by each connection's reader thread and
``/healthz`` by its own connection's thread, so a slow model never stalls them or other clients; requests
from several clients take the model lock one at a time.
"""

from __future__ import annotations

import hmac
import http
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from vla.errors import VlaError
from vla.serve.obs_schema import ObservationError, ObservationSpec
from vla.serve.wire import MAX_MESSAGE_BYTES, WireError, pack, unpack

PROTOCOL = "vla-serve/1"
PROTOCOL_VERSION = 1
log = logging.getLogger("vla.serve")


class ServeError(VlaError, RuntimeError):
    """The server cannot start as asked (e.g. a non-loopback address without an API key)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this machine without an API key."""
    if not is_loopback(host) and not api_key:
        raise ServeError(f"--host {host!r} is not a loopback address: serving beyond this machine needs an API key "
                         "(--api-key-file FILE)")


def check_safety_robots(safety: Any, spec: ObservationSpec) -> None:
    """One config for a one-robot policy; one per robot, for every robot, for a policy of several."""
    if safety is None:
        return
    if spec.robots and not isinstance(safety, dict):
        raise ServeError(f"safety: this policy drives several robots {sorted(spec.robots)}: give one config per "
                         "robot (a dict robot -> SafetyConfig)")
    if isinstance(safety, dict):
        if not spec.robots:
            raise ServeError("safety: one config per robot was given, but this policy drives one robot")
        if set(safety) != set(spec.robots):
            raise ServeError(f"safety: configs for {sorted(safety)}, this policy drives {sorted(spec.robots)} "
                             "(each robot needs one)")


def announce_safety(safety: Any) -> dict[str, Any] | None:
    """The metadata's ``safety``: the config, ``{"embodiments": {robot: config}}``, or None."""
    if safety is None:
        return None
    if isinstance(safety, dict):
        return {"embodiments": {robot: cfg.to_dict() for robot, cfg in safety.items()}}
    return safety.to_dict()


@dataclass
class _Health:
    started: float = field(default_factory=time.time)
    requests: int = 0
    errors: int = 0
    connections: int = 0
    last_inference_ms: float | None = None
    last_inference_at: float | None = None


class PolicyServer:
    """Serve ``predict(obs) -> float32 [H, A]`` to websocket clients (see module docstring).

    ``safety`` is a ``vla.serve.safety.SafetyConfig`` (each connection gets its own filter), for a policy of
    several robots a dict robot -> SafetyConfig naming every robot of ``spec``, or None.
    """

    def __init__(self, predict: Callable[[dict[str, Any]], np.ndarray], metadata: dict[str, Any],
                 spec: ObservationSpec, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
                 safety: Any = None, max_message_bytes: int = MAX_MESSAGE_BYTES, idle_timeout_s: float = 300.0,
                 max_connections: int = 64, monitor: Any = None,
                 features: Callable[[], np.ndarray | None] | None = None,
                 resample: Callable[[int], np.ndarray | None] | None = None) -> None:
        """``monitor``: a ``vla.serve.monitor.MonitorCalibration`` (each connection gets its own monitor);
        ``features`` / ``resample``: read the policy's latest readout features / sample more chunks from them
        (called under the model lock right after ``predict``), for the ood and spread signals."""
        check_bind(host, api_key)
        check_safety_robots(safety, spec)
        if max_message_bytes < 1024:
            raise ServeError(f"max_message_bytes: expected >= 1024, got {max_message_bytes}")
        self.predict, self.spec, self.host, self.port = predict, spec, host, port
        self.api_key, self.safety = api_key, safety
        self.max_message_bytes, self.idle_timeout_s = max_message_bytes, idle_timeout_s
        self.metadata = {**spec.to_metadata(), **metadata, "protocol": PROTOCOL, "protocol_version": PROTOCOL_VERSION,
                         "max_message_bytes": max_message_bytes,
                         "safety": announce_safety(safety),
                         "monitor": None if monitor is None else {
                             "threshold": monitor.threshold, "alpha": monitor.alpha, "signals": list(monitor.weights),
                             "steps_per_request": int(metadata.get("n_action_steps") or 1)}}
        self.monitor, self.features, self.resample = monitor, features, resample
        self.max_connections = max_connections
        self.health = _Health()
        self._model_lock = threading.Lock()  # one inference at a time, whatever the number of clients
        self._health_lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # ---- HTTP side: auth and health, before any websocket frame ----------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] == "/healthz":
            return self._json_response(http.HTTPStatus.OK, self.health_report())
        if self.health.connections >= self.max_connections:
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE,
                                      f"too many connections (limit {self.max_connections})\n")
        if self.api_key:
            given = request.headers.get("Authorization", "")
            expected = f"Api-Key {self.api_key}"
            if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
                log.warning("rejected a connection from %s: missing or wrong API key", connection.remote_address)
                return connection.respond(http.HTTPStatus.UNAUTHORIZED, "missing or wrong API key\n")
        return None

    @staticmethod
    def _json_response(status: http.HTTPStatus, body: dict[str, Any]) -> Response:
        data = json.dumps(body).encode()
        headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                           ("Connection", "close")])
        return Response(status.value, status.phrase, headers, data)

    def health_report(self) -> dict[str, Any]:
        h = self.health
        return {"status": "ok", "model_loaded": True, "protocol": PROTOCOL, "protocol_version": PROTOCOL_VERSION,
                "policy": self.metadata.get("policy"), "vla_version": self.metadata.get("vla_version"),
                "uptime_s": round(time.time() - h.started, 3), "connections": h.connections,
                "requests": h.requests, "errors": h.errors, "last_inference_ms": h.last_inference_ms,
                "last_inference_at": h.last_inference_at}

    # ---- websocket side: one handler thread per connection ---------------------------------------------
    def _count(self, **deltas: int) -> None:
        with self._health_lock:
            for name, delta in deltas.items():
                setattr(self.health, name, getattr(self.health, name) + delta)

    def _handler(self, ws: ServerConnection) -> None:
        self._count(connections=1)
        safety = None
        if self.safety is not None:
            from vla.serve.safety import SafetyFilter

            safety = ({robot: SafetyFilter(cfg) for robot, cfg in self.safety.items()}
                      if isinstance(self.safety, dict) else SafetyFilter(self.safety))
        monitor = None
        if self.monitor is not None:
            from vla.serve.monitor import RequestMonitor

            monitor = RequestMonitor(self.monitor, self.metadata["monitor"]["steps_per_request"])
        session: dict[str, Any] = {}  # this connection's episode memory (first frames for context cameras)
        try:
            ws.send(pack(self.metadata))
            while True:
                try:
                    message = ws.recv(timeout=self.idle_timeout_s)
                except TimeoutError:
                    ws.close(1000, f"idle for {self.idle_timeout_s:g} s")
                    return
                ws.send(self._reply(message, safety, monitor, session))
        except ConnectionClosed:
            pass
        except Exception:  # never let one connection take the server down
            log.exception("connection handler failed")
        finally:
            self._count(connections=-1)

    def _reply(self, message: str | bytes, safety: Any, monitor: Any = None,
               session: dict[str, Any] | None = None) -> bytes | str:
        """Decode, validate, infer, filter -> the packed reply, or an ``error: ...`` text (never raises)."""
        t0 = time.perf_counter()
        try:
            if isinstance(message, str):
                raise WireError("message: expected a binary msgpack frame, got a text frame")
            obs = self.spec.validate(unpack(message, self.max_message_bytes))
        except (WireError, ObservationError) as exc:
            self._count(errors=1)
            return f"error: {exc}"
        decode_s = time.perf_counter() - t0
        context = self.metadata.get("context_cameras") or []
        if context and session is not None:
            if obs["reset"] or "context_images" not in session:
                session["context_images"] = {cam: obs["images"][cam] for cam in context if cam in obs["images"]}
            obs["context_images"] = session["context_images"]
        try:
            with self._model_lock:
                t1 = time.perf_counter()
                chunk = np.asarray(self.predict(obs), dtype=np.float32)
                infer_s = time.perf_counter() - t1
                feats = self.features() if monitor is not None and self.features is not None else None
                n_samples = self.monitor.samples if monitor is not None else 0
                samples = self.resample(n_samples) if n_samples > 0 and self.resample is not None else None
            if chunk.ndim != 2 or not np.isfinite(chunk).all():
                raise ValueError(f"the policy returned {chunk.shape} with non-finite values" if chunk.ndim == 2
                                 else f"the policy returned shape {chunk.shape}, expected [H, A]")
            report = None
            t2 = time.perf_counter()
            # one filter per robot: the validated observation names one of them (check_safety_robots)
            robot_filter = safety[obs["embodiment"]] if isinstance(safety, dict) else safety
            if robot_filter is not None:
                from vla.serve.safety import summarize_reports

                if obs["reset"]:
                    robot_filter.reset()
                chunk, reports = robot_filter.filter_chunk(chunk, obs["state"])
                chunk = np.asarray(chunk, dtype=np.float32)
                report = summarize_reports(reports)
            safety_s = time.perf_counter() - t2
            t3 = time.perf_counter()
            mon = None
            if monitor is not None:
                if obs["reset"]:
                    monitor.reset()
                step, rec = monitor.on_request(obs["state"], obs.get("step"))
                monitor.on_reply(chunk, feats, samples)
                mon = {"score": rec.score, "alarm": rec.alarm, "step": step, "alarms": monitor.monitor.alarms,
                       "first_alarm_step": monitor.monitor.first_alarm_step}
            monitor_s = time.perf_counter() - t3
            with self._health_lock:
                self.health.requests += 1
                self.health.last_inference_ms = infer_s * 1e3
                self.health.last_inference_at = time.time()
            timing = {"decode_ms": decode_s * 1e3, "infer_ms": infer_s * 1e3, "safety_ms": safety_s * 1e3,
                      "total_ms": (time.perf_counter() - t0) * 1e3}
            reply = {"actions": chunk, "server_timing": timing, "safety": report}
            if mon is not None:  # extra keys only: clients that do not know them are unaffected
                timing["monitor_ms"] = monitor_s * 1e3
                reply["monitor"] = mon
            return pack(reply)
        except Exception as exc:
            self._count(errors=1)
            log.exception("inference failed")
            return f"error: inference failed: {type(exc).__name__}: {exc}"

    # ---- running -------------------------------------------------------------------------------------
    def _listen(self) -> Server:
        server = serve(self._handler, self.host, self.port, process_request=self._process_request,
                       compression=None, max_size=self.max_message_bytes, max_queue=4, open_timeout=10,
                       ping_interval=20, ping_timeout=20, close_timeout=2)
        self.port = server.socket.getsockname()[1]
        self._server = server
        return server

    def serve_forever(self) -> None:
        """Listen and serve until ``stop()`` (from another thread) or Ctrl-C."""
        server = self._server or self._listen()
        try:
            server.serve_forever()
        finally:
            server.shutdown()

    def start(self, timeout_s: float = 30.0) -> PolicyServer:
        """Serve from a background thread (tests, benchmarks); returns once listening (port 0: a free one)."""
        del timeout_s  # listening is synchronous: the socket is bound before the thread starts
        server = self._listen()
        self._thread = threading.Thread(target=server.serve_forever, name="vla-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close open connections (code 1001) and wait for their handlers."""
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
