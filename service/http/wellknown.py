"""Public keys of consent tokens, so the main app and auditors can verify them offline."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Response, get
from litestar.datastructures import State

from service.consent.runtime import Runtime
from service.db.errors import DATABASE_ERRORS
from service.db.pool import borrow
from service.db.signing_keys import published_keys

JWK_SET = "application/jwk-set+json"


@get(
    "/.well-known/jwks.json",
    tags=["public"],
    summary="Consent-token public keys (JWKS)",
    media_type=JWK_SET,
)
async def jwks(state: State) -> Response[dict[str, Any]]:
    runtime: Runtime = state.runtime
    keys = [runtime.signer.jwk]
    # Keys retired by a rotation stay published while tokens they signed can still be valid.
    since = runtime.clock.now() - timedelta(seconds=runtime.settings.consent_max_validity)
    try:
        async with borrow(state.pool) as connection:
            stored = await published_keys(connection, since)
    except DATABASE_ERRORS:
        stored = []
    keys += [key for key in stored if key.get("kid") != runtime.signer.kid]
    return Response(
        {"keys": keys},
        media_type=JWK_SET,
        headers={"Cache-Control": "public, max-age=300"},
    )
