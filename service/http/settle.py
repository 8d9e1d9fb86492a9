"""Read-your-writes on one replica: a request that may have written (any method but GET, HEAD
and OPTIONS) answers only after this process's invalidation listener has dispatched every
notice committed so far (``InvalidationListener.sync``). So a check sent to the same replica
after the answer to a grant, a withdrawal or a revocation never meets the entry from before it;
other replicas drop theirs as their own listeners receive the notice.

Every such request settles, not a list of handlers: a new endpoint cannot forget to.
"""

from __future__ import annotations

from collections.abc import Callable

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.db.invalidation import InvalidationListener

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def settle_writes_middleware_factory(
    listener_of: Callable[[], InvalidationListener | None],
) -> Callable[[ASGIApp], ASGIApp]:
    def middleware(app: ASGIApp) -> ASGIApp:
        async def settle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope.get("method") in SAFE_METHODS:  # type: ignore[comparison-overlap]
                await app(scope, receive, send)
                return

            async def send_settled(message: Message) -> None:
                if message["type"] == "http.response.start":
                    listener = listener_of()
                    if listener is not None:
                        await listener.sync()
                await send(message)

            await app(scope, receive, send_settled)

        return settle

    return middleware
