"""The transactional outbox: side effects written with the state change, delivered later.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and leased (``CONSENT_OUTBOX_LEASE``): the
worker renews the lease while it delivers, and a worker that dies mid-send leaves the row to
be claimed again once its lease runs out, so delivery is at least once. The SQL lives in
``service.db.outbox``; this module decides what is stored and when to try again.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any

import msgspec

from service.db import outbox as outbox_table
from service.db.connection import Connection
from service.db.outbox import OutboxItem
from service.delivery.emails import RenderedEmail
from service.security.email_address import parse_email_address
from service.security.personal_data import DataProtector
from service.states import OutboxStatus

BASE_BACKOFF_SECONDS = 30
MAX_BACKOFF_SECONDS = 3600
MAX_ERROR_CHARS = 500


class EmailPayload(msgspec.Struct, frozen=True, kw_only=True):
    to: str
    locale: str
    email: RenderedEmail


def backoff(attempts: int) -> timedelta:
    """Exponential backoff with jitter: 30 s, 60 s, 120 s, ... capped at one hour."""
    seconds = min(BASE_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


async def enqueue_email(
    connection: Connection,
    protector: DataProtector,
    *,
    topic: str,
    subject_id: str | None,
    related_id: uuid.UUID,
    to: str,
    locale: str,
    email: RenderedEmail,
    now: datetime,
    deliver_at: datetime | None = None,
    scrub_when_done: bool = False,
) -> uuid.UUID:
    item_id = uuid.uuid4()
    payload = msgspec.json.encode(EmailPayload(to=to, locale=locale, email=email))
    await outbox_table.insert_email(
        connection,
        item_id=item_id,
        topic=topic,
        subject_id=subject_id,
        related_id=related_id,
        payload_enc=protector.encrypt(payload, item_id.bytes),
        next_attempt_at=deliver_at or now,
        created_at=now,
        scrub_when_done=scrub_when_done,
    )
    return item_id


async def enqueue_webhook(
    connection: Connection,
    *,
    event_type: str,
    subject_id: str,
    related_id: uuid.UUID,
    data: dict[str, Any],
    now: datetime,
    scrub_when_done: bool = False,
) -> uuid.UUID:
    item_id = uuid.uuid4()
    await outbox_table.insert_webhook(
        connection,
        item_id=item_id,
        topic=event_type,
        subject_id=subject_id,
        related_id=related_id,
        payload={"type": event_type, "timestamp": now.isoformat(), "data": data},
        created_at=now,
        scrub_when_done=scrub_when_done,
    )
    return item_id


def decrypt_email(protector: DataProtector, item: OutboxItem) -> EmailPayload:
    """The stored email, its recipient checked again and written as the validated address
    (the ``To`` header and the envelope come from nothing else); an address that does not
    pass raises ``InvalidEmailAddress`` and the message is retried, then dead, never sent."""
    assert item.payload_enc is not None
    payload = msgspec.json.decode(
        protector.decrypt(item.payload_enc, item.id.bytes), type=EmailPayload
    )
    return msgspec.structs.replace(payload, to=parse_email_address(payload.to).address)


async def renew_claims(
    connection: Connection, items: list[OutboxItem], *, now: datetime, lease: timedelta
) -> set[uuid.UUID]:
    """Extend our claims on ``items`` to ``now + lease``; the ids of those still ours."""
    return await outbox_table.renew_claims(connection, items, until=now + lease)


async def mark_failed(
    connection: Connection,
    item: OutboxItem,
    *,
    error: str,
    now: datetime,
    max_attempts: int,
) -> OutboxStatus | None:
    """Record a failed attempt; the new status, or None when another worker's claim took over."""
    status = await outbox_table.mark_failed(
        connection,
        item,
        error=error[:MAX_ERROR_CHARS],
        dead=item.attempts >= max_attempts,
        next_attempt_at=now + backoff(item.attempts),
    )
    return status
