"""Fixed-window counters kept in PostgreSQL, so a limit holds across every replica."""

from __future__ import annotations

from datetime import datetime, timedelta

from service.db.connection import Connection


async def hit(
    connection: Connection, *, bucket: str, limit: int, window: int, now: datetime
) -> float | None:
    """Count one hit; return seconds to wait when the limit is exceeded, else None."""
    epoch = int(now.timestamp())
    window_start = datetime.fromtimestamp(epoch - epoch % window, tz=now.tzinfo)
    count: int = await connection.fetchval(
        """
        insert into rate_limit_counters (bucket, window_start, count) values ($1, $2, 1)
        on conflict (bucket, window_start) do update set count = rate_limit_counters.count + 1
        returning count
        """,
        bucket,
        window_start,
    )
    if count > limit:
        return (window_start + timedelta(seconds=window) - now).total_seconds()
    return None


# Buckets counted over a whole day start with this; the others' windows last an hour at most.
DAILY = "day:"


async def purge_old_windows(
    connection: Connection, before: datetime, *, daily_before: datetime
) -> None:
    """Counters of windows that started before ``before``; daily ones before ``daily_before``."""
    await connection.execute(
        """
        delete from rate_limit_counters
        where (window_start < $1 and not starts_with(bucket, $3)) or window_start < $2
        """,
        before,
        daily_before,
        DAILY,
    )


async def current(connection: Connection, *, bucket: str, window: int, now: datetime) -> int:
    """The hits counted so far in the current window, without counting one."""
    epoch = int(now.timestamp())
    window_start = datetime.fromtimestamp(epoch - epoch % window, tz=now.tzinfo)
    count: int | None = await connection.fetchval(
        "select count from rate_limit_counters where bucket = $1 and window_start = $2",
        bucket,
        window_start,
    )
    return count or 0
