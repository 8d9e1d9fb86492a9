"""The main app cancels a consent request it no longer needs (the child's signup was abandoned
or the account deleted), or support staff cancel one for a family: the request closes as
``cancelled`` and the guardian's address is deleted at once, as when a request expires
unanswered."""

from __future__ import annotations

import uuid

from service.consent import lifecycle, notifications
from service.consent.errors import Conflict, NotFound
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import outbox as outbox_table
from service.db.audit_events import record_event
from service.db.connection import Connection
from service.db.consent_requests import ConsentRequest
from service.states import RequestStatus

APP_CANCELLED = "cancelled by the main app; guardian address deleted"
STAFF_CANCELLED = "cancelled by support; guardian address deleted"


async def cancel_request(
    connection: Connection,
    runtime: Runtime,
    request_id: uuid.UUID,
    *,
    actor: str,
    reason: str = APP_CANCELLED,
) -> ConsentRequest:
    """Cancel a pending request; a request decided, expired or cancelled already is a
    conflict naming its status."""
    now = runtime.clock.now()
    async with connection.transaction():
        cancelled = await requests_repo.cancel_by_app(connection, request_id, now)
        if cancelled is None:
            found = await requests_repo.get_request(connection, request_id)
            if found is None:
                raise NotFound("No consent request with this id.")
            status = lifecycle.request_status_at(found.status, found.expires_at, now)
            raise Conflict(
                f"This consent request is {status}, so it cannot be cancelled.",
                current_status=status,
            )
        # The review link must not reach the guardian now, nor a reminder of it.
        await outbox_table.cancel_emails_for(connection, cancelled.id)
        await notifications.webhook(
            connection,
            runtime,
            RequestStatus.CANCELLED,
            subject_id=cancelled.subject_id,
            request_id=cancelled.id,
            purposes=cancelled.purposes,
            now=now,
        )
        await record_event(
            connection,
            actor=actor,
            action="request.cancelled",
            occurred_at=now,
            subject_id=cancelled.subject_id,
            request_id=cancelled.id,
            from_status=RequestStatus.PENDING,
            to_status=RequestStatus.CANCELLED,
            reason=reason,
        )
    return cancelled
