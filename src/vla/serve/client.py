"""PolicyClient: the robot-side client of ``vla serve`` (numpy, msgpack and websockets only; no torch).

- ``metadata``: what the server sent on connect (checked: protocol version, cameras, dims);
- ``infer(obs) -> dict`` with ``"actions"`` float32 [H, A] in robot units, ``"server_timing"``, ``"safety"``;
  the observation is checked against the server's schema before it is sent;
- ``reset()``: the next request starts a new episode (the server forgets its safety history);
- every receive has a timeout (never blocks forever); a lost connection raises at once and the next call
  reconnects, with exponential backoff between attempts.
"""

from __future__ import annotations

import time
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from vla.errors import VlaError
from vla.serve.obs_schema import ObservationSpec
from vla.serve.wire import MAX_MESSAGE_BYTES, WireError, pack, unpack

SUPPORTED_PROTOCOL = "vla-serve/1"


class PolicyClientError(VlaError, RuntimeError):
    """Base of the client's errors."""


class ServerUnavailable(PolicyClientError, ConnectionError):
    """Cannot reach the server, or the connection was lost (the next call reconnects)."""


class ServerTimeout(PolicyClientError, TimeoutError):
    """No reply within ``timeout_s`` (the connection is dropped so a late reply cannot be mistaken)."""


class ServerError(PolicyClientError):
    """The server answered with an error text (it names the field)."""


class ProtocolMismatch(PolicyClientError):
    """The server speaks another protocol version, or its schema differs from what the caller expects."""


class AuthenticationFailed(PolicyClientError):
    """The server refused the API key (HTTP 401)."""


def _connect_direct(url: str, **kwargs: Any) -> ClientConnection:
    """websockets' sync connect without a ``with`` block (``legacy=True`` silences 17's warning)."""
    try:
        return connect(url, legacy=True, **kwargs)
    except TypeError:  # websockets < 17 has no legacy flag
        return connect(url, **kwargs)


class PolicyClient:
    """Connect to ``url`` (``ws://host:port``); see the module docstring."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 10.0, connect_timeout_s: float = 5.0,
                 expect: dict[str, Any] | None = None, backoff_s: tuple[float, float] = (0.05, 2.0),
                 validate: bool = True, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.url = url if url.startswith(("ws://", "wss://")) else f"ws://{url}"
        self.api_key, self.timeout_s, self.connect_timeout_s = api_key, timeout_s, connect_timeout_s
        self.expect, self.validate, self.max_message_bytes = expect or {}, validate, max_message_bytes
        self._backoff_min, self._backoff_max = backoff_s
        self._backoff = 0.0
        self._next_attempt = 0.0
        self._ws: ClientConnection | None = None
        self._reset_next = True
        self.metadata: dict[str, Any] = {}
        self.spec: ObservationSpec | None = None
        self._connect()

    # ---- connection ----------------------------------------------------------------------------------
    def _connect(self) -> None:
        headers = {"Authorization": f"Api-Key {self.api_key}"} if self.api_key else None
        try:
            ws = _connect_direct(self.url, additional_headers=headers, open_timeout=self.connect_timeout_s,
                                 compression=None, max_size=self.max_message_bytes, close_timeout=1)
        except InvalidStatus as exc:
            if exc.response.status_code == 401:
                raise AuthenticationFailed(f"{self.url}: the server refused the API key (HTTP 401)") from None
            raise ServerUnavailable(f"{self.url}: handshake refused (HTTP {exc.response.status_code})") from None
        except InvalidURI as exc:
            raise PolicyClientError(f"{self.url}: not a websocket URL ({exc})") from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            self._schedule_retry()
            raise ServerUnavailable(f"{self.url}: cannot connect ({type(exc).__name__}: {exc})") from None
        try:
            meta = unpack(ws.recv(timeout=self.timeout_s), self.max_message_bytes)
        except (TimeoutError, ConnectionClosed, WireError) as exc:
            ws.close()
            self._schedule_retry()
            raise ServerUnavailable(f"{self.url}: no valid metadata from the server ({exc})") from None
        self._check_metadata(meta)
        self._ws, self.metadata = ws, meta
        self.spec = ObservationSpec.from_metadata(meta)
        self._backoff = 0.0
        self._reset_next = True

    def _check_metadata(self, meta: Any) -> None:
        if not isinstance(meta, dict) or meta.get("protocol") != SUPPORTED_PROTOCOL:
            got = meta.get("protocol") if isinstance(meta, dict) else type(meta).__name__
            raise ProtocolMismatch(f"{self.url}: server protocol {got!r}, this client speaks {SUPPORTED_PROTOCOL!r}")
        for key, want in self.expect.items():
            have = meta.get(key)
            if key == "cameras" and isinstance(have, dict) and isinstance(want, dict):
                have = {k: list(v) for k, v in have.items()}
                want = {k: list(v) for k, v in want.items()}
            if have != want:
                raise ProtocolMismatch(f"{self.url}: server metadata {key!r} is {have!r}, expected {want!r}")

    def _schedule_retry(self) -> None:
        self._backoff = min(self._backoff_max, max(self._backoff_min, self._backoff * 2))
        self._next_attempt = time.monotonic() + self._backoff

    def _drop(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:  # noqa: BLE001 - closing a broken socket may fail in many ways
                pass
        self._ws = None
        self._schedule_retry()

    def _ensure_connected(self) -> ClientConnection:
        if self._ws is None:
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                raise ServerUnavailable(f"{self.url}: not connected; next reconnection attempt in {wait:.2f} s")
            self._connect()
        assert self._ws is not None
        return self._ws

    # ---- policy interface ----------------------------------------------------------------------------
    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        """Send one observation, return the reply dict (``"actions"`` float32 [H, A])."""
        ws = self._ensure_connected()
        if self.validate and self.spec is not None:
            self.spec.validate(obs)  # raises ObservationError naming the field, before anything is sent
        message = dict(obs)
        if self._reset_next:
            message["reset"] = True
        try:
            ws.send(pack(message))
            reply = ws.recv(timeout=self.timeout_s)
        except TimeoutError:
            self._drop()
            raise ServerTimeout(f"{self.url}: no reply within {self.timeout_s:g} s") from None
        except (ConnectionClosed, OSError) as exc:
            self._drop()
            raise ServerUnavailable(f"{self.url}: connection lost ({type(exc).__name__}: {exc})") from None
        self._reset_next = False
        if isinstance(reply, str):
            raise ServerError(reply)
        try:
            out = unpack(reply, self.max_message_bytes)
        except WireError as exc:
            raise ServerError(f"{self.url}: unreadable reply ({exc})") from None
        if not isinstance(out, dict) or "actions" not in out:
            raise ServerError(f"{self.url}: reply has no 'actions'")
        return out

    @property
    def connected(self) -> bool:
        """True while the websocket is open (turns False as soon as the server's side closes or dies)."""
        from websockets.protocol import State

        return self._ws is not None and self._ws.state is State.OPEN

    def reset(self) -> None:
        """Mark the next request as the first of an episode."""
        self._reset_next = True

    def close(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:  # noqa: BLE001
                pass
            self._ws = None

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
