"""The operator's administration from the console: dead outbox messages sent again, API keys
created and revoked, the audit chain's head and its verification.

The command line does the same (``outbox retry``, ``keys create``/``revoke``, ``audit
verify``); here each view and action is an audit event naming the staff member.
"""

from __future__ import annotations

import unicodedata
import uuid
from enum import StrEnum

import msgspec

from service.consent import console_views
from service.consent.runtime import Runtime
from service.consent.staff_sessions import StaffSession
from service.db import api_keys
from service.db.api_keys import ApiKey
from service.db.audit_events import chain_head, record_event, verify_chain
from service.db.connection import Connection
from service.db.dead_letters import DeadMessage, dead_messages, message_state
from service.db.invalidation import publish
from service.db.outbox import requeue_dead
from service.states import OutboxStatus

KEY_NAME_MAX_LENGTH = 100
SCOPES = api_keys.SCOPES


class RetryOutcome(StrEnum):
    QUEUED = "queued"
    # Its payload is gone (retention or an erasure): there is nothing left to send.
    SCRUBBED = "scrubbed"
    NOT_DEAD = "not_dead"
    UNKNOWN = "unknown"


class InvalidKey(Exception):
    """A key cannot be created as asked; ``field`` is the form field at fault."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class ChainState(msgspec.Struct, frozen=True, kw_only=True):
    head_event: int | None
    head_hash: str | None


class ChainVerification(msgspec.Struct, frozen=True, kw_only=True):
    checked: int
    broken_at: int | None
    problem: str | None
    head: ChainState

    @property
    def ok(self) -> bool:
        return self.broken_at is None


async def _record(
    connection: Connection,
    runtime: Runtime,
    session: StaffSession,
    action: str,
    details: dict[str, object],
) -> None:
    await record_event(
        connection,
        actor=session.actor,
        action=action,
        occurred_at=runtime.clock.now(),
        details=details,
    )


async def view_page(
    connection: Connection, runtime: Runtime, session: StaffSession, page: str
) -> None:
    """An admin page that shows nothing listed here (a confirmation step)."""
    await console_views.viewed(connection, runtime, session, page)


async def view_dead_messages(
    connection: Connection, runtime: Runtime, session: StaffSession
) -> list[DeadMessage]:
    found = await dead_messages(connection)
    await console_views.viewed(connection, runtime, session, "admin_outbox")
    return found


async def retry_dead_message(
    connection: Connection, runtime: Runtime, session: StaffSession, message_id: uuid.UUID
) -> RetryOutcome:
    """Deliver a dead message again with its id (the webhook-id receivers dedupe on), as
    ``outbox retry`` does; only one that still has its payload."""
    async with connection.transaction():
        topic = await requeue_dead(connection, message_id, runtime.clock.now())
        if topic is not None:
            await _record(
                connection,
                runtime,
                session,
                "outbox.retried",
                {"message_id": str(message_id), "topic": topic},
            )
            return RetryOutcome.QUEUED
        state = await message_state(connection, message_id)
    if state is None:
        return RetryOutcome.UNKNOWN
    status, has_payload = state
    if status is OutboxStatus.DEAD and not has_payload:
        return RetryOutcome.SCRUBBED
    return RetryOutcome.NOT_DEAD


async def view_keys(
    connection: Connection, runtime: Runtime, session: StaffSession
) -> list[ApiKey]:
    found = await api_keys.list_api_keys(connection)
    await console_views.viewed(connection, runtime, session, "admin_keys")
    return found


def valid_key_name(raw: str) -> str:
    name = raw.strip()
    if (
        not name
        or len(name) > KEY_NAME_MAX_LENGTH
        or any(unicodedata.category(c).startswith("C") for c in name)
    ):
        raise InvalidKey("name")
    return name


async def create_key(
    connection: Connection,
    runtime: Runtime,
    session: StaffSession,
    *,
    name: str,
    scopes: list[str],
) -> tuple[str, ApiKey]:
    """A new API key (shown to the caller once; only its hash is stored), as ``keys create``."""
    checked_name = valid_key_name(name)
    if not scopes or not set(scopes) <= set(SCOPES):
        raise InvalidKey("scopes")
    async with connection.transaction():
        key, record = await api_keys.create_api_key(
            connection, name=checked_name, scopes=scopes, now=runtime.clock.now()
        )
        await _record(
            connection,
            runtime,
            session,
            "api_key.created",
            {"key_id": str(record.id), "name": record.name, "scopes": record.scopes},
        )
    return key, record


async def find_key(connection: Connection, key_id: uuid.UUID) -> ApiKey | None:
    return await api_keys.get_api_key(connection, key_id)


async def revoke_key(
    connection: Connection, runtime: Runtime, session: StaffSession, key_id: uuid.UUID
) -> bool:
    """Revoke an active key, as ``keys revoke``: every replica drops it from its cache."""
    async with connection.transaction():
        revoked = await api_keys.revoke_api_key(connection, key_id, runtime.clock.now())
        if revoked:
            await publish(connection, "api_keys")
            await _record(connection, runtime, session, "api_key.revoked", {"key_id": str(key_id)})
    return revoked


async def _head(connection: Connection) -> ChainState:
    head = await chain_head(connection)
    if head is None:
        return ChainState(head_event=None, head_hash=None)
    return ChainState(head_event=head[0], head_hash=head[1].hex())


async def view_chain(connection: Connection, runtime: Runtime, session: StaffSession) -> ChainState:
    """The chain head, as ``audit verify`` prints it (to be kept outside the database); read
    before this view's own event is appended."""
    head = await _head(connection)
    await console_views.viewed(connection, runtime, session, "admin_audit")
    return head


async def verify(
    connection: Connection, runtime: Runtime, session: StaffSession
) -> ChainVerification:
    """Walk the whole chain, as ``audit verify``; the run itself is then recorded."""
    checked, broken = await verify_chain(connection)
    head = await _head(connection)
    async with connection.transaction():
        await _record(
            connection,
            runtime,
            session,
            "audit.verified",
            {"checked": checked, "broken_at": broken.event_id if broken else None},
        )
    return ChainVerification(
        checked=checked,
        broken_at=broken.event_id if broken else None,
        problem=broken.problem if broken else None,
        head=head,
    )
