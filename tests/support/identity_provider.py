"""A real identity provider's JWKS endpoint: an HTTP server on 127.0.0.1 in a thread that
answers the way a test chooses (well, failing, slowly, or with far too much) and counts how often
it was asked."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHUNK = 64 * 1024


class Behaviour(StrEnum):
    OK = "ok"  # the JWKS document
    FAILING = "failing"  # 503, as an identity provider that is down behind its load balancer
    DRIPPING = "dripping"  # headers at once, then one byte of the document every 50 ms
    HUGE = "huge"  # a valid JWKS padded with whitespace to HUGE_BYTES, with a Content-Length
    UNENDING = "unending"  # no Content-Length, UNENDING_BYTES of a document that never closes


class IdentityProvider:
    HUGE_BYTES = 1024 * 1024
    UNENDING_BYTES = 64 * 1024 * 1024

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.behaviour = Behaviour.OK
        self._hits = 0
        self._bytes_sent = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with provider._lock:
                    provider._hits += 1
                    behaviour = provider.behaviour
                    body = json.dumps(provider.document).encode()
                # The client may give up early, as it should on the slow and the huge.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    provider._answer(self, behaviour, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"

    @property
    def hits(self) -> int:
        with self._lock:
            return self._hits

    @property
    def bytes_sent(self) -> int:
        with self._lock:
            return self._bytes_sent

    def _send(self, handler: BaseHTTPRequestHandler, data: bytes) -> None:
        handler.wfile.write(data)
        handler.wfile.flush()
        with self._lock:
            self._bytes_sent += len(data)

    def _answer(self, handler: BaseHTTPRequestHandler, behaviour: Behaviour, body: bytes) -> None:
        if behaviour is Behaviour.FAILING:
            handler.send_error(503, "identity provider unavailable")
            return
        handler.send_response(200)
        handler.send_header("content-type", "application/json")
        if behaviour is Behaviour.OK:
            handler.send_header("content-length", str(len(body)))
            handler.end_headers()
            self._send(handler, body)
        elif behaviour is Behaviour.HUGE:
            padded = body[:-1] + b" " * (self.HUGE_BYTES - len(body)) + body[-1:]
            handler.send_header("content-length", str(len(padded)))
            handler.end_headers()
            self._send(handler, padded)
        elif behaviour is Behaviour.DRIPPING:
            handler.end_headers()  # no length: the body would end when we close
            while not self._closing.wait(0.05):
                self._send(handler, b" ")
        elif behaviour is Behaviour.UNENDING:
            handler.end_headers()  # HTTP/1.0 without a length: the body ends when we close
            self._send(handler, b'{"keys": [')
            while self.bytes_sent < self.UNENDING_BYTES and not self._closing.is_set():
                self._send(handler, b" " * CHUNK)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def identity_provider(document: dict[str, Any]) -> Iterator[IdentityProvider]:
    provider = IdentityProvider(document)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()
