"""The worker forgets console sessions that can no longer be used (signed out, idle past the
timeout, past their absolute end) at its periodic sweep, even when nobody signs in again."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from service.clock import ManualClock
from service.consent import staff_sessions
from service.security.staff_oidc import StaffIdentity
from service.worker import Worker


def _identity(sub: str) -> StaffIdentity:
    return StaffIdentity(sub=sub, name=sub.title(), roles=frozenset({"support"}))


async def _subs(db: asyncpg.Connection) -> list[str]:
    rows = await db.fetch("select staff_sub from console_sessions order by staff_sub")
    return [row["staff_sub"] for row in rows]


async def test_the_worker_sweep_deletes_ended_idle_and_lapsed_sessions(
    db: asyncpg.Connection, worker: Worker, clock: ManualClock
) -> None:
    runtime = worker.runtime
    busy_id, _ = await staff_sessions.open_session(db, runtime, _identity("busy"))
    _, idle = await staff_sessions.open_session(db, runtime, _identity("idle"))
    _, leaving = await staff_sessions.open_session(db, runtime, _identity("leaving"))
    await staff_sessions.end_session(db, runtime, leaving)
    assert idle.sub == "idle"

    clock.advance(timedelta(minutes=20))
    assert await staff_sessions.live_session(db, runtime, busy_id) is not None
    clock.advance(timedelta(minutes=15))  # idle: 35 minutes unused; busy: 15

    swept = await worker.sweep()
    assert swept["console_sessions"] == 2
    assert await _subs(db) == ["busy"]
    assert await staff_sessions.live_session(db, runtime, busy_id) is not None

    # However busy, a session lapses at its absolute end (8 hours), and is swept then.
    for _ in range(17):
        clock.advance(timedelta(minutes=29))
        await staff_sessions.live_session(db, runtime, busy_id)
    assert (await worker.sweep())["console_sessions"] == 1
    assert await _subs(db) == []
    # Who signed in and out stays in the audit trail.
    actions = await db.fetch("select actor, action from audit_events order by id")
    assert ("staff:leaving", "console.signed_out") in [(r["actor"], r["action"]) for r in actions]


async def test_a_live_session_survives_the_sweep(
    db: asyncpg.Connection, worker: Worker, clock: ManualClock
) -> None:
    session_id, _ = await staff_sessions.open_session(db, worker.runtime, _identity("sam"))
    clock.advance(timedelta(minutes=29))
    assert (await worker.sweep())["console_sessions"] == 0
    assert await staff_sessions.live_session(db, worker.runtime, session_id) is not None
