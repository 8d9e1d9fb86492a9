"""Published consent-token public keys, one row per key id ever used for signing."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from service.db.connection import Connection
from service.security.tokens import ConsentTokenSigner


async def register_signing_key(
    connection: Connection, signer: ConsentTokenSigner, now: datetime
) -> None:
    """Record that ``signer`` signs as of ``now`` (called at start and on every grant)."""
    await connection.execute(
        """
        insert into signing_keys (kid, public_jwk, first_used_at, last_used_at)
        values ($1, $2::jsonb, $3, $3)
        on conflict (kid) do update set last_used_at = greatest(signing_keys.last_used_at, $3)
        """,
        signer.kid,
        json.dumps(signer.jwk),
        now,
    )


async def published_keys(connection: Connection, since: datetime) -> list[dict[str, Any]]:
    rows = await connection.fetch(
        "select public_jwk from signing_keys where last_used_at >= $1 order by last_used_at desc",
        since,
    )
    return [json.loads(row["public_jwk"]) for row in rows]
