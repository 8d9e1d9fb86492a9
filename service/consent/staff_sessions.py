"""Support console sessions: opened at sign-in, checked on every request against the idle
timeout and the absolute lifetime, ended at logout. The browser holds a random id; the
database its SHA-256. Signing in and out are audit events naming the staff member."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import msgspec

from service.consent.runtime import Runtime
from service.db import console_sessions
from service.db.audit_events import record_event
from service.db.connection import Connection
from service.security.staff_oidc import StaffIdentity

SESSION_ID_BYTES = 32
# Ended and lapsed sessions are forgotten this long after, at the next sign-in.
KEEP_FINISHED = timedelta(days=1)


class StaffSession(msgspec.Struct, frozen=True, kw_only=True):
    """A live console session: who, with which roles, until when."""

    id_hash: bytes
    sub: str
    name: str | None
    roles: frozenset[str]
    expires_at: datetime

    @property
    def actor(self) -> str:
        return staff_actor(self.sub)


def staff_actor(sub: str) -> str:
    """The audit trail's actor for a staff member, as the staff API writes it."""
    return f"staff:{sub}"


def session_hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


async def open_session(
    connection: Connection, runtime: Runtime, identity: StaffIdentity
) -> tuple[str, StaffSession]:
    """A new session for a signed-in staff member: the cookie's value and the session."""
    now = runtime.clock.now()
    session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
    session = StaffSession(
        id_hash=session_hash(session_id),
        sub=identity.sub,
        name=identity.name,
        roles=identity.roles,
        expires_at=now + timedelta(seconds=runtime.settings.console_session_lifetime),
    )
    async with connection.transaction():
        await console_sessions.delete_finished(connection, now - KEEP_FINISHED)
        await console_sessions.insert(
            connection,
            id_hash=session.id_hash,
            staff_sub=session.sub,
            staff_name=session.name,
            roles=sorted(session.roles),
            now=now,
            expires_at=session.expires_at,
        )
        await record_event(
            connection,
            actor=session.actor,
            action="console.signed_in",
            occurred_at=now,
            details={"roles": sorted(session.roles)},
        )
    return session_id, session


async def live_session(
    connection: Connection, runtime: Runtime, session_id: str | None
) -> StaffSession | None:
    """The session the cookie names while it is live (not ended, not idle for longer than the
    idle timeout, not past its absolute end), its last use moved to now; else None."""
    if not session_id or len(session_id) > 128:
        return None
    id_hash = session_hash(session_id)
    found = await console_sessions.find(connection, id_hash)
    if found is None or found.ended_at is not None:
        return None
    now = runtime.clock.now()
    idle = timedelta(seconds=runtime.settings.console_idle_timeout)
    if now >= found.expires_at or now - found.last_seen_at >= idle:
        await console_sessions.end(connection, id_hash, now)
        return None
    await console_sessions.touch(connection, id_hash, now)
    return StaffSession(
        id_hash=found.id_hash,
        sub=found.staff_sub,
        name=found.staff_name,
        roles=frozenset(found.roles),
        expires_at=found.expires_at,
    )


async def end_session(connection: Connection, runtime: Runtime, session: StaffSession) -> None:
    now = runtime.clock.now()
    async with connection.transaction():
        if await console_sessions.end(connection, session.id_hash, now):
            await record_event(
                connection, actor=session.actor, action="console.signed_out", occurred_at=now
            )


async def sweep_sessions(connection: Connection, runtime: Runtime) -> int:
    """The worker's sweep: sessions that ended, lapsed or sat idle are deleted (who signed in
    when stays in the audit trail), also when nobody signs in for a long time."""
    now = runtime.clock.now()
    idle = timedelta(seconds=runtime.settings.console_idle_timeout)
    return await console_sessions.delete_unusable(connection, now, now - idle)
