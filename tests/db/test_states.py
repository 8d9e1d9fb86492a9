"""The states in ``service.states`` are exactly what the schema's CHECK constraints allow."""

from __future__ import annotations

import re
from enum import StrEnum

import asyncpg
import pytest

from service.states import ConsentStatus, OutboxStatus, RequestStatus

# The constraint that lists the allowed values checks the status column alone; the others
# (``(status = 'pending') = (decided_at is null)`` ...) tie it to further columns.
STATUS_CONSTRAINTS = """
select c.conname, pg_get_constraintdef(c.oid) as definition
from pg_constraint c
join pg_attribute a on a.attrelid = c.conrelid and a.attnum = any(c.conkey)
where c.contype = 'c' and c.conrelid = $1::regclass and a.attname = 'status'
  and cardinality(c.conkey) = 1
"""


@pytest.mark.parametrize(
    ("table", "states"),
    [("consent_requests", RequestStatus), ("consents", ConsentStatus), ("outbox", OutboxStatus)],
)
async def test_status_check_constraint_allows_exactly_the_enum_values(
    db: asyncpg.Connection, table: str, states: type[StrEnum]
) -> None:
    constraints = await db.fetch(STATUS_CONSTRAINTS, table)
    assert len(constraints) == 1, [c["definition"] for c in constraints]
    allowed = set(re.findall(r"'([^']*)'::text", constraints[0]["definition"]))
    assert allowed == {state.value for state in states}


async def test_a_status_outside_the_enum_is_refused_by_the_database(
    db: asyncpg.Connection,
) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="outbox_status_check"):
        await db.execute(
            """
            insert into outbox (id, kind, topic, payload, next_attempt_at, created_at, status)
            values (gen_random_uuid(), 'webhook', 'consent.test', '{}'::jsonb, now(), now(),
                    'delivered')
            """
        )
