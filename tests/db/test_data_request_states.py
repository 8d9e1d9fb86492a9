"""The rights-request enums in ``service.states`` are exactly what ``data_requests`` allows."""

from __future__ import annotations

import re
from enum import StrEnum

import asyncpg
import pytest

from service.states import DataRequestChannel, DataRequestKind, DataRequestStatus

# The constraint that lists a column's allowed values checks that column alone.
SINGLE_COLUMN_CHECKS = """
select pg_get_constraintdef(c.oid) as definition
from pg_constraint c
join pg_attribute a on a.attrelid = c.conrelid and a.attnum = any(c.conkey)
where c.contype = 'c' and c.conrelid = 'data_requests'::regclass and a.attname = $1
  and cardinality(c.conkey) = 1
"""


@pytest.mark.parametrize(
    ("column", "values"),
    [("status", DataRequestStatus), ("kind", DataRequestKind), ("channel", DataRequestChannel)],
)
async def test_check_constraint_allows_exactly_the_enum_values(
    db: asyncpg.Connection, column: str, values: type[StrEnum]
) -> None:
    [constraint] = await db.fetch(SINGLE_COLUMN_CHECKS, column)
    allowed = set(re.findall(r"'([^']*)'::text", constraint["definition"]))
    assert allowed == {value.value for value in values}


async def test_a_refusal_without_a_reason_is_refused_by_the_database(
    db: asyncpg.Connection,
) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="data_requests_check"):
        await db.execute(
            """
            insert into data_requests (id, kind, subject_id, channel, received_at, due_at,
                                       status, created_at, updated_at, closed_at)
            values (gen_random_uuid(), 'access', 'child-1', 'staff_phone', now(),
                    now() + interval '10 days', 'refused', now(), now(), now())
            """
        )
