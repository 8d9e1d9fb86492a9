"""The worker's sweeps: write down what time alone has changed.

Readers never wait for these (``lifecycle`` says what a record is at any moment); the sweeps
make the stored status catch up and send what each change tells the guardian and the app.
"""

from __future__ import annotations

from service.consent import endings
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import consents as consents_repo
from service.db.connection import Connection


async def expire_overdue_requests(connection: Connection, runtime: Runtime) -> int:
    now = runtime.clock.now()
    async with connection.transaction():
        expired = await requests_repo.expire_overdue(connection, now)
        for request in expired:
            await endings.request_closed_unanswered(
                connection,
                runtime,
                request,
                now,
                reason="no answer before the link expired; guardian address deleted",
            )
    return len(expired)


async def expire_lapsed_consents(connection: Connection, runtime: Runtime) -> int:
    now = runtime.clock.now()
    async with connection.transaction():
        lapsed = await consents_repo.expire_lapsed(connection, now)
        for consent in lapsed:
            await endings.consent_lapsed(connection, runtime, consent, now)
    return len(lapsed)
