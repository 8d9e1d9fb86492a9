"""Bulk consent records for the benchmarks, made by PostgreSQL itself (``generate_series``):
millions of rows in minutes, never through Python one row at a time.

Every subject gets a granted request, its consent and two audit events (request created,
consent granted); one in ten consents has ended (revoked, withdrawn or lapsed) long enough ago
that retention has already purged it, as in a service that has run for years. Beside them, one
pending request per ten subjects whose link is still open, and one delivered email per ten.
The constants a real request carries (jurisdiction, policy version, purposes, guardian
reference, ...) are copied from a template request the service itself created, so the rows
look like the service's own to every query. Guardian addresses are not written: they are
encrypted with their request's id as context, which SQL cannot do (``encrypt_addresses`` adds
them to the few rows that need one).

The rows are written with triggers off (``session_replication_role = replica``, as a restore
does): the check cache's per-row notices would queue millions of messages at commit, and
nothing listens while a benchmark loads. So this is only for a throwaway database, by its
superuser.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import asyncpg

from service.security.personal_data import DataProtector

# A real token is a JWS of about this length; the cached check row keeps it.
TOKEN_LENGTH = 600


def subject(prefix: str, number: int) -> str:
    return f"{prefix}{number}"


def consent_id(prefix: str, number: int) -> uuid.UUID:
    """The id the loader gives subject ``number``'s consent (md5 of a name, as in SQL)."""
    return uuid.UUID(hashlib.md5(f"c{prefix}{number}".encode()).hexdigest())  # noqa: S324


LOAD_REQUESTS = """
insert into consent_requests (
    id, subject_id, status, country, age_of_consent, basis, birth_date,
    consent_required_until, guardian_email_enc, guardian_email_hash, guardian_ref, purposes,
    locale, policy_version, link_token_hash, api_key_id, created_at, expires_at, decided_at,
    updated_at, purged_at, joint_consent, child_agreed)
select md5('r' || $2 || i)::uuid, $2 || i, 'granted', t.country, t.age_of_consent, t.basis,
       null, t.consent_required_until, null, sha256(convert_to('g' || $2 || i, 'UTF8')),
       t.guardian_ref, t.purposes, t.locale, t.policy_version, null, t.api_key_id,
       $3::timestamptz - make_interval(secs => i % 31536000) - interval '1 day',
       $3::timestamptz - make_interval(secs => i % 31536000) + interval '6 days',
       $3::timestamptz - make_interval(secs => i % 31536000) - interval '23 hours',
       $3::timestamptz - make_interval(secs => i % 31536000), null, false, null
from generate_series(1, $4::bigint) as i, consent_requests as t
where t.id = $1
"""

# One in twenty revoked, one withdrawn, one lapsed: all ended three years ago and purged since.
LOAD_CONSENTS = """
insert into consents (
    id, request_id, subject_id, status, purposes, purpose_methods, jurisdiction, method,
    policy_version, guardian_ref, granted_at, expires_at, ended_at, end_reason, token,
    withdraw_token_hash, updated_at, purged_at)
select md5('c' || $2 || i)::uuid, md5('r' || $2 || i)::uuid, $2 || i,
       s.status, t.purposes, m.methods, t.country, 'email_plus', t.policy_version,
       t.guardian_ref,
       case when s.status = 'granted' then $3::timestamptz - make_interval(secs => i % 31536000)
            else $3::timestamptz - interval '4 years' end,
       case when s.status = 'granted' then $3::timestamptz + interval '2 years'
            else $3::timestamptz - interval '3 years' end,
       case when s.status = 'granted' then null else $3::timestamptz - interval '3 years' end,
       case when s.status = 'granted' then null else 'bench' end,
       case when s.status = 'granted' then left(repeat(md5($2 || i), 20), $5) end,
       case when s.status = 'granted' then sha256(convert_to('w' || $2 || i, 'UTF8')) end,
       $3::timestamptz,
       case when s.status = 'granted' then null
            else $3::timestamptz - interval '3 years' + interval '1 day' end
from generate_series(1, $4::bigint) as i
cross join lateral (
    select case i % 20 when 16 then 'revoked' when 17 then 'withdrawn' when 18 then 'expired'
                else 'granted' end as status
) as s,
consent_requests as t,
lateral (select jsonb_object_agg(p, 'email_plus') as methods from unnest(t.purposes) as p) as m
where t.id = $1
"""

LOAD_PENDING = """
insert into consent_requests (
    id, subject_id, status, country, age_of_consent, basis, birth_date,
    consent_required_until, guardian_email_enc, guardian_email_hash, guardian_ref, purposes,
    locale, policy_version, link_token_hash, api_key_id, created_at, expires_at, decided_at,
    updated_at, purged_at, joint_consent, child_agreed)
select md5('p' || $2 || i)::uuid, 'pending-' || $2 || i, 'pending', t.country,
       t.age_of_consent, t.basis, t.birth_date, t.consent_required_until,
       null, sha256(convert_to('pg' || $2 || i, 'UTF8')), t.guardian_ref,
       t.purposes, t.locale, t.policy_version, sha256(convert_to('pl' || $2 || i, 'UTF8')),
       t.api_key_id, $3::timestamptz - make_interval(secs => i % 86400),
       $3::timestamptz + interval '6 days' - make_interval(secs => i % 86400), null,
       $3::timestamptz, null, false, null
from generate_series(1, $4::bigint) as i, consent_requests as t
where t.id = $1
"""

LOAD_AUDIT = """
insert into audit_events (
    subject_id, request_id, consent_id, actor, action, from_status, to_status, details,
    occurred_at, personal_digest, content_hash, prev_hash, chain_hash)
select $1 || i, md5('r' || $1 || i)::uuid,
       case when e = 2 then md5('c' || $1 || i)::uuid end,
       case when e = 1 then 'api_key:bench' else 'guardian' end,
       case when e = 1 then 'request.created' else 'consent.granted' end,
       case when e = 1 then null else 'pending' end,
       case when e = 1 then 'pending' else 'granted' end,
       '{}'::jsonb, $2::timestamptz - make_interval(secs => i % 31536000),
       sha256(convert_to('d' || $1 || i || '.' || e, 'UTF8')),
       sha256(convert_to('h' || $1 || i || '.' || e, 'UTF8')),
       sha256(convert_to('p' || $1 || i || '.' || e, 'UTF8')),
       sha256(convert_to('x' || $1 || i || '.' || e, 'UTF8'))
from generate_series(1, $3::bigint) as i, generate_series(1, 2) as e
"""

LOAD_SENT_EMAILS = """
insert into outbox (id, kind, topic, subject_id, related_id, payload, payload_enc, status,
                    attempts, next_attempt_at, created_at, sent_at)
select md5('o' || $1 || i)::uuid, 'email', 'guardian.request', 'pending-' || $1 || i,
       md5('p' || $1 || i)::uuid, null, null, 'sent', 1,
       $2::timestamptz - make_interval(secs => i % 86400),
       $2::timestamptz - make_interval(secs => i % 86400),
       $2::timestamptz - make_interval(secs => i % 86400)
from generate_series(1, $3::bigint) as i
"""


TABLES = ("consent_requests", "consents", "audit_events", "outbox")

# Every index of the loaded tables is dropped for the load and built again after it, since
# building an index from sorted rows is many times faster than inserting random keys (the
# ids, token and chain hashes) into it row by row, which at ten million rows means a read
# from disk per row. First the indexes that back no constraint:
SECONDARY_INDEXES = """
select indexname, indexdef from pg_indexes as i
where schemaname = current_schema() and tablename = any($1::text[])
  and not exists (select 1 from pg_constraint as c where c.conname = i.indexname)
"""

# then the primary keys and unique constraints, and the foreign keys that point at them (which
# must go first and come back last, checked against all the rows at once).
KEY_CONSTRAINTS = """
select c.conrelid::regclass::text as table_name, c.conname, c.contype,
       pg_get_constraintdef(c.oid) as definition
from pg_constraint as c
where (c.contype in ('p', 'u') and c.conrelid = any($1::regclass[]))
   or (c.contype = 'f' and c.confrelid = any($1::regclass[]))
order by c.contype = 'f' desc
"""


async def load_consents(
    connection: asyncpg.Connection,
    *,
    template_request: uuid.UUID,
    prefix: str,
    rows: int,
    now: datetime,
    token_length: int = TOKEN_LENGTH,
    report: Callable[[str], None] = lambda _line: None,
) -> None:
    """``rows`` subjects named ``prefix`` + 1..rows, each with a request, a consent and two
    audit events, and the pending requests and sent emails of one in ten."""
    steps: list[tuple[str, str, tuple[object, ...]]] = [
        ("requests", LOAD_REQUESTS, (template_request, prefix, now, rows)),
        ("consents", LOAD_CONSENTS, (template_request, prefix, now, rows, token_length)),
        ("pending requests", LOAD_PENDING, (template_request, prefix, now, max(rows // 10, 1))),
        ("audit events", LOAD_AUDIT, (prefix, now, rows)),
        ("sent emails", LOAD_SENT_EMAILS, (prefix, now, max(rows // 10, 1))),
    ]
    async with connection.transaction():
        await connection.execute("set local session_replication_role = replica")
        await connection.execute("set local synchronous_commit = off")
        await connection.execute("set local maintenance_work_mem = '512MB'")
        indexes = await connection.fetch(SECONDARY_INDEXES, list(TABLES))
        for index in indexes:
            await connection.execute(f'drop index "{index["indexname"]}"')
        constraints = await connection.fetch(KEY_CONSTRAINTS, list(TABLES))
        for constraint in constraints:
            await connection.execute(
                f'alter table {constraint["table_name"]} drop constraint "{constraint["conname"]}"'
            )
        for name, statement, arguments in steps:
            started = time.perf_counter()
            await connection.execute(statement, *arguments)
            report(f"  {name}: {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        for constraint in reversed(constraints):
            await connection.execute(
                f"alter table {constraint['table_name']}"
                f' add constraint "{constraint["conname"]}" {constraint["definition"]}'
            )
        for index in indexes:
            await connection.execute(index["indexdef"])
        report(
            f"  {len(constraints)} keys and {len(indexes)} indexes built again:"
            f" {time.perf_counter() - started:.1f} s"
        )
    started = time.perf_counter()
    for table in TABLES:
        await connection.execute(f"analyze {table}")
    report(f"  analyze: {time.perf_counter() - started:.1f} s")


async def encrypt_addresses(
    connection: asyncpg.Connection, protector: DataProtector, *, prefix: str, rows: int
) -> None:
    """Give the requests of subjects ``prefix`` + 1..rows a guardian address, encrypted the
    way the service does, so that what tells the guardian (a revocation) finds one."""
    updates = []
    for number in range(1, rows + 1):
        request_id = uuid.UUID(hashlib.md5(f"r{prefix}{number}".encode()).hexdigest())  # noqa: S324
        address = f"guardian-{prefix}{number}@example.com".encode()
        updates.append((request_id, protector.encrypt(address, request_id.bytes)))
    await connection.executemany(
        "update consent_requests set guardian_email_enc = $2 where id = $1", updates
    )
