"""What a child said about themselves when the app opened a request (``child_hint``), for the
support console: stored encrypted like the guardian address, and gone with it."""

from __future__ import annotations

import uuid

from service.consent.notifications import child_hint_context
from service.consent.runtime import Runtime
from service.db import subjects as subjects_repo
from service.db.connection import Connection


async def child_hints(
    connection: Connection, runtime: Runtime, subject_id: str
) -> dict[uuid.UUID, str]:
    """Each of the subject's requests that still holds a hint, by request id."""
    pseudonym = runtime.protector.subject_pseudonym(subject_id)
    hints = {}
    for request in await subjects_repo.requests_of(connection, subject_id, pseudonym):
        if request.child_hint_enc is not None:
            hints[request.id] = runtime.protector.decrypt(
                request.child_hint_enc, child_hint_context(request.id)
            ).decode()
    return hints
