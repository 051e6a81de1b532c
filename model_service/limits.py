"""The request body's size, bounded before anything parses it.

FastAPI reads the whole body and parses it before a route's own checks run: one 42 MB request took the
service to 926 MB of memory before its batch limit answered 413. This middleware answers 413 from the
Content-Length header alone, and for a body that does not declare its length (chunked) reads it here, up
to the limit and no further, so no request holds more than the limit in memory.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def too_large_detail(limit: int) -> str:
    return f"the request body is over {limit} bytes (MODEL_SERVICE_MAX_BODY_BYTES): send fewer records per request"


def declared_length(scope: Scope) -> int | None:
    """The Content-Length the client declared, or None (absent or not a number: the body is counted)."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """ASGI middleware: a body over `limit` bytes is a 413 naming the limit, never read past it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": too_large_detail(self.limit)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = declared_length(scope)
        if length is not None and length > self.limit:
            await self._reject(send)
            return
        if length is None:  # chunked: read up to the limit here, then hand the app what was read
            body = bytearray()
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    await self.app(scope, _replay(message), send)
                    return
                body += message.get("body", b"")
                if len(body) > self.limit:
                    await self._reject(send)
                    return
                if not message.get("more_body", False):
                    break
            receive = _replay({"type": "http.request", "body": bytes(body), "more_body": False}, receive)
        await self.app(scope, receive, send)


def _replay(first: Message, then: Receive | None = None) -> Receive:
    """A receive that gives `first` once, then whatever `then` gives (a disconnect, later)."""
    given = False

    async def receive() -> Message:
        nonlocal given
        if not given:
            given = True
            return first
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive
