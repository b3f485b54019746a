"""Answering a request from ASGI middleware in the API's flat error shape, also halfway through its body."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DISCONNECT: Message = {"type": "http.disconnect"}


async def answer(send: Send, status: int, error: str, field: str | None, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": error, "field": field}).encode()
    extra = [(key.lower().encode(), value.encode()) for key, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": body})


class Refusal:
    """Refuses a request while the app is still reading it.

    The refusal goes out once (unless the app had already answered) and closes the connection; the app then
    hears a disconnect, so nothing drains the rest of the body, and its own answer and errors are dropped.
    """

    def __init__(self, send: Send) -> None:
        self.send = send
        self.refused = False
        self.answered = False

    async def refuse(self, status: int, error: str, field: str | None = None) -> Message:
        """Answer `status` and return the disconnect the app should hear instead of the next body chunk."""
        if not self.refused and not self.answered:
            await answer(self.send, status, error, field, {"Connection": "close"})
        self.refused = True
        return DISCONNECT

    async def forward(self, message: Message) -> None:
        if self.refused:
            return
        self.answered = self.answered or message["type"] == "http.response.start"
        await self.send(message)

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive) -> None:
        try:
            await app(scope, receive, self.forward)
        except Exception:
            if not self.refused:
                raise
