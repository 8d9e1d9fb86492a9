"""The guardian dashboard: a parent signs in with a link emailed to their address (no account,
no password) and sees and manages every child that address consented for.

The page that asks for a link answers the same whatever the address (no enumeration); a link
is sent only to an address with a consent. The emailed link is opened with a GET that changes
nothing (mail scanners prefetch links); its button's POST uses it up and starts a short
server-side session, whose cookie carries a random id (only its hash is stored).

Whose children a session sees is decided by the exact address the sign-in link went to: its
guardian reference (``EmailAddress.identity``: the local part as given but for its case, the
domain in lower case), the reference every consent of that address carries. The lookup hashes
strip a ``+tag`` (``parent+x@`` and ``parent@`` share one), so they only find candidates and
count limits; on a domain where ``parent+x`` is another mailbox, its holder sees only the
consents given for ``parent+x``.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from enum import StrEnum

import msgspec

from service.consent import endings, lifecycle, notifications, policy, subjects
from service.consent.endings import Withdrawal
from service.consent.errors import LimitExceeded, LinkProblem, NotFound
from service.consent.retention import DASHBOARD_RECORD_LIFETIME
from service.consent.runtime import Runtime
from service.db import consents as consents_repo
from service.db import guardian_dashboard as repo
from service.db import locks, rate_limits
from service.db.audit_events import GUARDIAN_ACTOR
from service.db.connection import Connection
from service.db.consent_requests import ConsentRequest
from service.db.consents import Consent
from service.db.guardian_dashboard import GuardianConsent, GuardianSession, SignInLink
from service.delivery import emails, outbox
from service.security.email_address import EmailAddress
from service.security.tokens import hash_link_token, new_link_token
from service.states import ConsentStatus, LinkProblemReason

SIGN_IN_LINK_TTL = timedelta(minutes=30)
SESSION_IDLE_TIMEOUT = timedelta(minutes=15)
SESSION_LIFETIME = DASHBOARD_RECORD_LIFETIME  # the retention policy states it
# The limits of other guardian emails: 5 per address per 24 h (as consent requests), and per
# client network a bound on how many addresses it can have mailed.
SIGN_IN_LINKS_PER_ADDRESS_PER_DAY = 5
SIGN_IN_REQUESTS_PER_CLIENT_PER_HOUR = 10
SESSION_COOKIE = "guardian_session"
SESSION_ID_BYTES = 32


class PurposeState(StrEnum):
    """What a purpose of a child's consent is now, as the dashboard shows it."""

    GIVEN = "given"
    WITHDRAWN = "withdrawn"
    NOT_GIVEN = "not_given"
    ENDED = "ended"


class PurposeLine(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    state: PurposeState
    required: bool


class Child(msgspec.Struct, frozen=True, kw_only=True):
    """One child of the signed-in address: its newest consent."""

    consent: Consent
    request: ConsentRequest
    child_hint: str | None
    live: bool
    status: ConsentStatus
    purposes: list[PurposeLine]


def session_hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


async def request_sign_in(
    connection: Connection,
    runtime: Runtime,
    address: EmailAddress,
    *,
    locale: str,
    client_keys: list[str],
) -> None:
    """Count the request against the network's limit (``LimitExceeded``) and email a sign-in
    link if, and only if, the address gave a consent and has not had its day's links. The
    caller answers the same either way."""
    now = runtime.clock.now()
    hashes = runtime.protector.address_hashes(address)
    guardian_ref = runtime.protector.guardian_reference(address.identity)
    async with connection.transaction():
        waits = []
        for key in client_keys:
            bucket = "guardian-sign-in:" + runtime.protector.lookup_hash(key).hex()[:32]
            wait = await rate_limits.hit(
                connection,
                bucket=bucket,
                limit=SIGN_IN_REQUESTS_PER_CLIENT_PER_HOUR,
                window=3600,
                now=now,
            )
            if wait is not None:
                waits.append(wait)
    if waits:
        raise LimitExceeded(
            "Too many sign-in links were asked for from this network; try again later.",
            retry_after_seconds=max(waits),
        )
    async with connection.transaction():
        await locks.lock_guardian(connection, hashes[0])
        given = await repo.consents_of(connection, hashes, guardian_ref)
        if not given:
            return
        first, _ = given[0]
        # Over the address's limit nothing more is sent, and the answer stays the same: a 429
        # here would tell that the address has consented.
        sent = await repo.sign_in_links_since(connection, hashes, now - timedelta(days=1))
        if sent >= SIGN_IN_LINKS_PER_ADDRESS_PER_DAY:
            return
        token = new_link_token()
        expires_at = now + SIGN_IN_LINK_TTL
        await repo.insert_sign_in_link(
            connection,
            token_hash=hash_link_token(token),
            email_hashes=hashes,
            guardian_ref=guardian_ref,
            locale=locale,
            now=now,
            expires_at=expires_at,
        )
        email = emails.render_sign_in_email(
            locale=locale,
            operator_name=runtime.settings.operator_name,
            sign_in_url=runtime.link(f"/guardian/sign-in/{token}"),
            expires_at=expires_at,
            timezone=policy.display_timezone(first.jurisdiction),
        )
        await outbox.enqueue_email(
            connection,
            runtime.protector,
            topic="guardian_sign_in",
            subject_id=None,
            related_id=uuid.uuid4(),
            to=address.address,
            locale=locale,
            email=email,
            now=now,
            scrub_when_done=True,
        )


def _usable(link: SignInLink | None, now: datetime) -> SignInLink:
    if link is None:
        raise LinkProblem(LinkProblemReason.UNKNOWN)
    if link.used_at is not None:
        raise LinkProblem(LinkProblemReason.USED, locale=link.locale)
    if link.expires_at <= now:
        raise LinkProblem(LinkProblemReason.EXPIRED, locale=link.locale)
    return link


async def load_sign_in_link(connection: Connection, runtime: Runtime, token: str) -> SignInLink:
    """The link as its page shows it; looking changes nothing."""
    found = await repo.find_sign_in_link(connection, hash_link_token(token))
    return _usable(found, runtime.clock.now())


async def sign_in(
    connection: Connection, runtime: Runtime, token: str
) -> tuple[str, GuardianSession]:
    """Use the link up and start a session; return the cookie's session id and the session."""
    now = runtime.clock.now()
    token_hash = hash_link_token(token)
    async with connection.transaction():
        used = await repo.use_sign_in_link(connection, token_hash, now)
        if used is None:
            _usable(await repo.find_sign_in_link(connection, token_hash), now)
            raise LinkProblem(LinkProblemReason.USED)
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        session = GuardianSession(
            id_hash=session_hash(session_id),
            guardian_email_hashes=used.guardian_email_hashes,
            guardian_ref=used.guardian_ref,
            locale=used.locale,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LIFETIME,
            ended_at=None,
        )
        await repo.insert_session(
            connection,
            id_hash=session.id_hash,
            email_hashes=session.guardian_email_hashes,
            guardian_ref=session.guardian_ref,
            locale=session.locale,
            now=now,
            idle_until=now + SESSION_IDLE_TIMEOUT,
            expires_at=session.expires_at,
        )
    return session_id, session


async def current_session(
    connection: Connection, runtime: Runtime, session_id: str | None
) -> GuardianSession | None:
    """The live session of the cookie, its idle time restarted; None when there is none."""
    if not session_id or len(session_id) > 100:
        return None
    now = runtime.clock.now()
    found = await repo.find_session(connection, session_hash(session_id))
    if (
        found is None
        or found.ended_at is not None
        or found.expires_at <= now
        or now - found.last_seen_at > SESSION_IDLE_TIMEOUT
    ):
        return None
    await repo.touch_session(connection, found.id_hash, now, now + SESSION_IDLE_TIMEOUT)
    return found


async def sign_out(connection: Connection, runtime: Runtime, session_id: str | None) -> None:
    """End the session; the consent links it issued go with it."""
    if session_id and len(session_id) <= 100:
        id_hash = session_hash(session_id)
        async with connection.transaction():
            await repo.end_session(connection, id_hash, runtime.clock.now())
            await repo.delete_consent_links_of(connection, id_hash)


def _purpose_lines(
    runtime: Runtime, consent: Consent, request: ConsentRequest, live: bool
) -> list[PurposeLine]:
    withdrawn = {w.purpose for w in consent.withdrawn_purposes}
    lines = []
    for purpose in runtime.catalogue.among(request.purposes):
        if not live:
            state = PurposeState.ENDED
        elif purpose.id in consent.purposes:
            state = PurposeState.GIVEN
        elif purpose.id in withdrawn:
            state = PurposeState.WITHDRAWN
        else:
            state = PurposeState.NOT_GIVEN
        lines.append(PurposeLine(id=purpose.id, state=state, required=purpose.required))
    return lines


async def children(
    connection: Connection, runtime: Runtime, session: GuardianSession
) -> list[Child]:
    now = runtime.clock.now()
    found = []
    given = await repo.consents_of(connection, session.guardian_email_hashes, session.guardian_ref)
    for consent, request in given:
        status = lifecycle.consent_status_at(consent.status, consent.expires_at, now)
        live = status == ConsentStatus.GRANTED
        found.append(
            Child(
                consent=consent,
                request=request,
                child_hint=notifications.child_hint(runtime, request),
                live=live,
                status=status,
                purposes=_purpose_lines(runtime, consent, request, live),
            )
        )
    # live consents first, then the newest
    found.sort(key=lambda child: (not child.live, -child.consent.granted_at.timestamp()))
    return found


async def child(
    connection: Connection, runtime: Runtime, session: GuardianSession, consent_id: uuid.UUID
) -> Child:
    """One child of the session's address; ``NotFound`` for any other consent."""
    for found in await children(connection, runtime, session):
        if found.consent.id == consent_id:
            return found
    raise NotFound("No such consent for this address.")


async def _owned(
    connection: Connection, session: GuardianSession, consent_id: uuid.UUID
) -> GuardianConsent:
    found = await repo.consent_of(
        connection, session.guardian_email_hashes, session.guardian_ref, consent_id
    )
    if found is None:
        raise NotFound("No such consent for this address.")
    return found


def ends_consent(runtime: Runtime, child: Child, purpose: str) -> bool:
    """Whether withdrawing ``purpose`` ends the child's consent (as ``endings`` decides)."""
    return endings.ends_consent(child.consent, [purpose], runtime.catalogue.required_ids)


async def withdraw_purpose(
    connection: Connection,
    runtime: Runtime,
    session: GuardianSession,
    consent_id: uuid.UUID,
    purposes: list[str],
    *,
    erase: bool = False,
) -> Withdrawal:
    """Withdraw purposes of one child's consent as its withdrawal link does (``endings``: a
    required one, or the last, ends it, and erases with CONSENT_WITHDRAWAL_ERASES). ``erase``:
    the guardian's opt-in erasure when that setting is off; only with a withdrawal that ends
    the consent, in the same transaction (if the erasure fails, nothing is withdrawn)."""
    async with connection.transaction():
        owned = await _owned(connection, session, consent_id)
        if erase:
            # the erasure's locks first, so the audit chain lock is still taken last
            found = await consents_repo.get_consent(connection, owned.consent_id)
            if found is None:
                raise NotFound("No such consent for this address.")
            await subjects.lock_subject_records(connection, found.subject_id)
        withdrawal = await endings.withdraw_purposes_of_consent(
            connection, runtime, consent_id, purposes, erase=erase
        )
        if erase:
            # Art. 17: the child's data and the guardian's address go too.
            await subjects.erase(
                connection, runtime, withdrawal.consent.subject_id, actor=GUARDIAN_ACTOR
            )
    return withdrawal


async def consent_link(
    connection: Connection, runtime: Runtime, session: GuardianSession, consent_id: uuid.UUID
) -> str:
    """A short-lived token that opens the consent's rights and address pages; it ends with the
    session at the latest."""
    now = runtime.clock.now()
    await _owned(connection, session, consent_id)
    consent = await consents_repo.get_consent(connection, consent_id)
    endings.live_consent(consent, now)
    token = new_link_token()
    await repo.insert_consent_link(
        connection,
        token_hash=hash_link_token(token),
        consent_id=consent_id,
        session_id_hash=session.id_hash,
        now=now,
        expires_at=min(session.expires_at, now + SIGN_IN_LINK_TTL),
    )
    return token
