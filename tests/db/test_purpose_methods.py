"""The schema keeps a verification method for every purpose of a consent, from the list of
methods the service knows (``VerificationMethod``)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import msgspec
import pytest

from service.states import VerificationMethod


async def granted_request(db: asyncpg.Connection) -> uuid.UUID:
    request_id = uuid.uuid4()
    now = datetime.now(UTC)
    await db.execute(
        """
        insert into consent_requests (
            id, subject_id, status, country, age_of_consent, basis, consent_required_until,
            guardian_ref, purposes, locale, policy_version, created_at, expires_at,
            decided_at, updated_at, link_token_hash
        ) values ($1, 'child-1', 'granted', 'SI', 15, 'test', $2, 'g-ref', $3, 'en', 'v1',
                  $4, $5, $4, $4, $6)
        """,
        request_id,
        date(2030, 1, 1),
        ["tutoring", "research_sharing"],
        now,
        now + timedelta(days=7),
        os.urandom(32),
    )
    return request_id


async def insert_consent(
    db: asyncpg.Connection, request_id: uuid.UUID, purpose_methods: str | None
) -> None:
    now = datetime.now(UTC)
    await db.execute(
        """
        insert into consents (
            id, request_id, subject_id, status, purposes, jurisdiction, method, policy_version,
            guardian_ref, granted_at, expires_at, updated_at, purpose_methods
        ) values ($1, $2, 'child-1', 'granted', $3, 'SI', 'email_plus', 'v1', 'g-ref', $4, $5,
                  $4, $6::jsonb)
        """,
        uuid.uuid4(),
        request_id,
        ["tutoring", "research_sharing"],
        now,
        now + timedelta(days=365),
        purpose_methods,
    )


async def test_a_consent_without_methods_gets_its_method_for_every_purpose(
    db: asyncpg.Connection,
) -> None:
    await insert_consent(db, await granted_request(db), None)
    stored = msgspec.json.decode(await db.fetchval("select purpose_methods from consents"))
    assert stored == {"tutoring": "email_plus", "research_sharing": "email_plus"}


@pytest.mark.parametrize(
    "purpose_methods",
    [
        '{"tutoring": "email_plus"}',  # a purpose without its method
        '{"tutoring": "email_plus", "research_sharing": "card_check"}',  # an unknown method
        '["email_plus"]',
    ],
)
async def test_methods_that_do_not_cover_the_purposes_are_refused(
    db: asyncpg.Connection, purpose_methods: str
) -> None:
    request_id = await granted_request(db)
    with pytest.raises(asyncpg.CheckViolationError, match="consents_purpose_methods_valid"):
        await insert_consent(db, request_id, purpose_methods)
    assert await db.fetchval("select count(*) from consents") == 0


@pytest.mark.parametrize("method", list(VerificationMethod))
async def test_every_known_method_is_allowed(
    db: asyncpg.Connection, method: VerificationMethod
) -> None:
    await insert_consent(
        db,
        await granted_request(db),
        msgspec.json.encode({"tutoring": method, "research_sharing": method}).decode(),
    )
    assert await db.fetchval("select count(*) from consents") == 1
