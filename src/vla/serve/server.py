"""PolicyServer: a websocket + msgpack policy server that openpi's unchanged client can drive.

Per connection: the server sends its metadata first; then each binary frame is one observation and
each reply is ``{"actions": float32 [H, A] (robot units, after the safety filter), "server_timing": {...},
"safety": {...} | None}``. Bad input gets a text frame ``error: <field>: <what was expected>`` and the
connection stays open. The API key (``Authorization: Api-Key KEY``) is compared in constant time during
the HTTP handshake, before any frame is read; ``GET /healthz`` answers JSON on the same port.

Inference runs on one worker thread, off the event loop, so a slow model never stalls pings, the
health check or other connections; requests from several clients queue there in arrival order.
"""

from __future__ import annotations

import asyncio
import hmac
import http
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from vla.serve.obs_schema import ObservationError, ObservationSpec
from vla.serve.wire import MAX_MESSAGE_BYTES, WireError, pack, unpack

PROTOCOL = "vla-serve/1"
PROTOCOL_VERSION = 1
log = logging.getLogger("vla.serve")


class ServeError(RuntimeError):
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

    ``safety`` is a ``vla.serve.safety.SafetyConfig`` (each connection gets its own filter) or None.
    """

    def __init__(self, predict: Callable[[dict[str, Any]], np.ndarray], metadata: dict[str, Any],
                 spec: ObservationSpec, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
                 safety: Any = None, max_message_bytes: int = MAX_MESSAGE_BYTES, idle_timeout_s: float = 300.0) -> None:
        check_bind(host, api_key)
        if max_message_bytes < 1024:
            raise ServeError(f"max_message_bytes: expected >= 1024, got {max_message_bytes}")
        self.predict, self.spec, self.host, self.port = predict, spec, host, port
        self.api_key, self.safety = api_key, safety
        self.max_message_bytes, self.idle_timeout_s = max_message_bytes, idle_timeout_s
        self.metadata = {**metadata, **spec.to_metadata(), "protocol": PROTOCOL, "protocol_version": PROTOCOL_VERSION,
                         "max_message_bytes": max_message_bytes,
                         "safety": safety.to_dict() if safety is not None else None}
        self.health = _Health()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vla-infer")
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # ---- HTTP side: auth and health, before any websocket frame ----------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] == "/healthz":
            return self._json_response(http.HTTPStatus.OK, self.health_report())
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

    # ---- websocket side ------------------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        self.health.connections += 1
        safety = None
        if self.safety is not None:
            from vla.serve.safety import SafetyFilter

            safety = SafetyFilter(self.safety)
        loop = asyncio.get_running_loop()
        try:
            await ws.send(pack(self.metadata))
            while True:
                try:
                    message = await asyncio.wait_for(ws.recv(), timeout=self.idle_timeout_s)
                except TimeoutError:
                    await ws.close(1000, f"idle for {self.idle_timeout_s:g} s")
                    return
                t0 = time.perf_counter()
                try:
                    if isinstance(message, str):
                        raise WireError("message: expected a binary msgpack frame, got a text frame")
                    obs = self.spec.validate(unpack(message, self.max_message_bytes))
                except (WireError, ObservationError) as exc:
                    self.health.errors += 1
                    await ws.send(f"error: {exc}")
                    continue
                decode_s = time.perf_counter() - t0
                reply = await loop.run_in_executor(self._pool, self._infer, obs, safety, t0, decode_s)
                await ws.send(reply)
        except ConnectionClosed:
            pass
        except Exception:  # never let one connection take the server down
            log.exception("connection handler failed")
        finally:
            self.health.connections -= 1

    def _infer(self, obs: dict[str, Any], safety: Any, t0: float, decode_s: float) -> bytes | str:
        """Worker thread: inference + safety filter -> packed reply (or an error text)."""
        try:
            t1 = time.perf_counter()
            chunk = np.asarray(self.predict(obs), dtype=np.float32)
            infer_s = time.perf_counter() - t1
            if chunk.ndim != 2 or not np.isfinite(chunk).all():
                raise ValueError(f"the policy returned {chunk.shape} with non-finite values" if chunk.ndim == 2
                                 else f"the policy returned shape {chunk.shape}, expected [H, A]")
            report = None
            t2 = time.perf_counter()
            if safety is not None:
                from vla.serve.safety import summarize_reports

                if obs["reset"]:
                    safety.reset()
                chunk, reports = safety.filter_chunk(chunk, obs["state"])
                chunk = np.asarray(chunk, dtype=np.float32)
                report = summarize_reports(reports)
            safety_s = time.perf_counter() - t2
            self.health.requests += 1
            self.health.last_inference_ms = infer_s * 1e3
            self.health.last_inference_at = time.time()
            timing = {"decode_ms": decode_s * 1e3, "infer_ms": infer_s * 1e3, "safety_ms": safety_s * 1e3,
                      "total_ms": (time.perf_counter() - t0) * 1e3}
            return pack({"actions": chunk, "server_timing": timing, "safety": report})
        except Exception as exc:
            self.health.errors += 1
            log.exception("inference failed")
            return f"error: inference failed: {type(exc).__name__}: {exc}"

    # ---- running -------------------------------------------------------------------------------------
    async def serve_async(self, ready: Callable[[int], None] | None = None) -> None:
        """Run until ``stop()``; ``ready(port)`` is called once listening (port 0 picks a free one)."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handler, self.host, self.port, process_request=self._process_request,
                         compression=None, max_size=self.max_message_bytes, max_queue=4,
                         ping_interval=20, ping_timeout=20, close_timeout=2) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            if ready:
                ready(self.port)
            await self._stop.wait()

    def serve_forever(self) -> None:
        asyncio.run(self.serve_async())

    def start(self, timeout_s: float = 30.0) -> PolicyServer:
        """Serve from a background thread (tests, benchmarks); returns once listening."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self.serve_async(lambda _p: self._ready.set())),
                                        name="vla-serve", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise ServeError(f"server did not start listening on {self.host}:{self.port} within {timeout_s} s")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
