"""Caps request bodies while they stream in: too large is 413, too slow is 408, and either closes the connection.

The cap is checked against Content-Length first and against the bytes actually
received (chunked bodies have no length). A body must keep arriving: after
`timeout_s` it needs an average of MIN_RATE bytes per second, so a client that
trickles a byte a second cannot hold a connection open. Once refused, the app
sees a disconnect and its own answer is dropped; an app that answers before
reading the whole body (a 400, a 404) closes the connection too, so nothing
drains the rest.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .refusals import DISCONNECT, Refusal, answer

MIN_RATE = 16 * 1024


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await answer(send, 413, self._too_large(), None, {"Connection": "close"})
            return
        began = time.monotonic()
        received = 0
        complete = False

        async def closing_send(message: Message) -> None:
            """An answer given before the body is in closes the connection, or the server drains what is left."""
            if message["type"] == "http.response.start" and not complete:
                headers = message.get("headers", [])
                if all(key.lower() != b"connection" for key, _ in headers):
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        refusal = Refusal(closing_send)

        async def guarded_receive() -> Message:
            nonlocal received, complete
            if refusal.refused:
                return DISCONNECT
            if complete:  # only a disconnect is left to hear, whenever it comes
                return await receive()
            allowed = began + self.timeout_s + received / MIN_RATE - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(allowed, 0.001))
            except asyncio.TimeoutError:
                return await refusal.refuse(408, f"the request body arrived too slowly (under {MIN_RATE // 1024} "
                                                 f"KB/s after {self.timeout_s:.0f} s); send it again")
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    return await refusal.refuse(413, self._too_large())
            return message

        await refusal.run(self.app, scope, guarded_receive)

    def _too_large(self) -> str:
        return (f"the request is larger than {self.max_bytes // (1024 * 1024)} MB; "
                "each file may be at most RECON_MAX_FILE_MB")
