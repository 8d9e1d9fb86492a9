"""The handoff: a second channel to the parent, on the parent's own device.

The child's screen shows a short code (and a QR code of where to type it). The parent types the
code on their own phone, gives their own address, confirms it with a one-time code emailed
there (email plus, as with the emailed link), and then reviews and decides on the usual page.
When the app gave the guardian's address, that address stays the request's: the one-time code
goes to it, and whoever types the code back has shown they read that mailbox (a child typing
the code on their own screen cannot put their own address in its place).

Both codes are short enough to type, so they are kept only as keyed hashes (a plain hash of 40
bits could be searched through), work once, expire soon, and wrong guesses are counted: per
client address for the handoff code (which names no request until it is right), per request
for the emailed code.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta

import msgspec

from service.consent import lifecycle, notifications, policy
from service.consent.errors import Conflict, Gone, LimitExceeded, NotFound
from service.consent.policy import GUARDIAN_REQUESTS_PER_DAY
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import handoffs as handoffs_repo
from service.db import locks, rate_limits
from service.db.audit_events import GUARDIAN_ACTOR, record_event
from service.db.connection import Connection
from service.db.consent_requests import ConsentRequest
from service.db.handoffs import MAX_STRIKES, Handoff
from service.delivery import emails, outbox
from service.security.email_address import InvalidEmailAddress, parse_email_address
from service.security.personal_data import mask_email
from service.security.tokens import hash_link_token, new_link_token
from service.states import HandoffProblem, RequestStatus

# No 0/O, 1/I/L: read off a screen and typed on a phone without doubt. 31**8 is about 2**39.6.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
OTP_DIGITS = 6
# The emailed code works this long; a new one may be asked for, at most MAX_OTP_SENDS times.
OTP_TTL = timedelta(minutes=15)
MAX_OTP_SENDS = 3
# One-time codes emailed to one address, whatever the request, in a day: the form must not
# make the service mail anybody's address without end.
OTP_SENDS_PER_ADDRESS_PER_DAY = 5
DAY = 24 * 3600
# Wrong handoff codes from one client address before it may try no more for the window.
WRONG_CODES_PER_WINDOW = 10
WRONG_CODE_WINDOW = 3600
PATH = "/guardian/code"


class HandoffOffer(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    url: str
    expires_at: datetime


class HandoffError(Exception):
    """The code, or the page after it, cannot be used; ``locale`` is the request's language
    when the request is known."""

    def __init__(
        self,
        problem: HandoffProblem,
        *,
        locale: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.locale = locale
        self.retry_after_seconds = retry_after_seconds


class AddressProblem(Exception):
    """The address form cannot be accepted (``invalid``: not an address we send to; else too
    many codes asked for)."""

    def __init__(self, *, invalid: bool, retry_after_seconds: float | None = None) -> None:
        super().__init__("invalid address" if invalid else "too many codes")
        self.invalid = invalid
        self.retry_after_seconds = retry_after_seconds


class WrongOneTimeCode(Exception):
    """The emailed code was mistyped (``expired``: right form, but its time is up)."""

    def __init__(self, *, expired: bool = False) -> None:
        super().__init__("expired" if expired else "wrong")
        self.expired = expired


class Session(msgspec.Struct, frozen=True, kw_only=True):
    handoff: Handoff
    request: ConsentRequest


class Opened(msgspec.Struct, frozen=True, kw_only=True):
    session_token: str
    locale: str
    # the app gave the guardian's address: the one-time code goes there, none is asked for
    address_on_file: bool


class CodeSent(msgspec.Struct, frozen=True, kw_only=True):
    masked_address: str
    expires_at: datetime
    locale: str
    country: str


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def shown_code(code: str) -> str:
    """Grouped in two fours, as the child's screen shows it (ABCD-EFGH)."""
    half = CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def normalize_code(raw: str) -> str | None:
    """What the parent typed, without case, spaces or dashes; None when it cannot be a code."""
    code = "".join(raw.split()).replace("-", "").upper()
    if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        return None
    return code


def handoff_url(runtime: Runtime) -> str:
    """Where the parent types the code. It never carries the code: the QR code is on the
    child's screen, and the code must be typed by the parent, not opened by a scan."""
    return runtime.link(PATH)


def _code_hash(runtime: Runtime, code: str) -> bytes:
    return runtime.protector.lookup_hash("handoff-code:" + code)


def _otp_hash(
    runtime: Runtime, request: ConsentRequest, otp: str, *, to_address_on_file: bool
) -> bytes:
    """A code sent to the address on file is bound to that address as stored: once it is
    corrected, a code sent to the old one proves nothing."""
    on_file = (request.guardian_email_enc or b"") if to_address_on_file else b""
    return runtime.protector.lookup_hash(f"handoff-otp:{request.id}:{on_file.hex()}:{otp}")


def _address_context(request_id: uuid.UUID) -> bytes:
    """The unconfirmed address's ciphertext is bound to its request and to being unconfirmed
    (it can never be passed off as the request's guardian address)."""
    return request_id.bytes + b"handoff_address"


async def offer(
    connection: Connection,
    runtime: Runtime,
    *,
    request_id: uuid.UUID,
    now: datetime,
    request_expires_at: datetime,
) -> HandoffOffer:
    """A new request's handoff, in its opening transaction."""
    code = new_code()
    expires_at = min(now + timedelta(seconds=runtime.settings.handoff_ttl), request_expires_at)
    await handoffs_repo.insert(
        connection,
        request_id=request_id,
        code_hash=_code_hash(runtime, code),
        now=now,
        expires_at=expires_at,
    )
    return HandoffOffer(code=shown_code(code), url=handoff_url(runtime), expires_at=expires_at)


async def reoffer(
    connection: Connection, runtime: Runtime, *, request_id: uuid.UUID, now: datetime
) -> HandoffOffer | None:
    """A replayed request's handoff (Idempotency-Key): the stored answer cannot hold the code
    (only its hash is kept), so a new code replaces the first one, which stops working, and
    its expiry stays. Only one code ever works. None when the handoff was used, is locked,
    past its time, or its request is no longer pending."""
    request = await requests_repo.get_request(connection, request_id)
    if request is None or lifecycle.request_status_at(request.status, request.expires_at, now) != (
        RequestStatus.PENDING
    ):
        return None
    code = new_code()
    expires_at = await handoffs_repo.replace_code(
        connection, request_id, _code_hash(runtime, code), now
    )
    if expires_at is None:
        return None
    return HandoffOffer(code=shown_code(code), url=handoff_url(runtime), expires_at=expires_at)


async def qr_target(
    connection: Connection, runtime: Runtime, request_id: uuid.UUID
) -> tuple[str, str]:
    """What the QR code on the child's screen encodes, while the handoff can still be used,
    and the request's language (the image's title is in it)."""
    now = runtime.clock.now()
    request = await requests_repo.get_request(connection, request_id)
    if request is None:
        raise NotFound("No consent request with this id.")
    status = lifecycle.request_status_at(request.status, request.expires_at, now)
    if status != RequestStatus.PENDING:
        raise Conflict("The consent request is no longer pending.", current_status=status)
    handoff = await handoffs_repo.for_request(connection, request_id)
    if handoff is None:
        raise NotFound("This consent request has no handoff.")
    if handoff.opened_at is not None:
        raise Gone("The handoff code was used already.")
    if handoff.strikes >= MAX_STRIKES:
        raise Gone("The handoff is locked after too many wrong codes.")
    if handoff.expires_at <= now:
        raise Gone("The handoff code has expired; open a new consent request for a new one.")
    return handoff_url(runtime), request.locale


def _usable(handoff: Handoff, request: ConsentRequest, now: datetime) -> None:
    """Raise when the code may not be used; the order says the most useful thing first."""
    locale = request.locale
    if lifecycle.request_status_at(request.status, request.expires_at, now) != (
        RequestStatus.PENDING
    ):
        raise HandoffError(HandoffProblem.ENDED, locale=locale)
    if handoff.strikes >= MAX_STRIKES:
        raise HandoffError(HandoffProblem.LOCKED, locale=locale)
    if handoff.opened_at is not None:
        raise HandoffError(HandoffProblem.USED, locale=locale)
    if handoff.expires_at <= now:
        raise HandoffError(HandoffProblem.EXPIRED, locale=locale)


async def _wrong_code_wait(connection: Connection, bucket: str, now: datetime) -> float | None:
    hits = await rate_limits.current(connection, bucket=bucket, window=WRONG_CODE_WINDOW, now=now)
    if hits < WRONG_CODES_PER_WINDOW:
        return None
    epoch = int(now.timestamp())
    return float(WRONG_CODE_WINDOW - epoch % WRONG_CODE_WINDOW)


async def open_with_code(
    connection: Connection, runtime: Runtime, raw_code: str, *, strike_bucket: str
) -> Opened:
    """The parent typed the code: it works once, and opens the page for their address.

    ``strike_bucket`` names the client address (hashed); a wrong code counts against it, and
    an address with too many wrong codes may try no more for a while, right code or not."""
    now = runtime.clock.now()
    wait = await _wrong_code_wait(connection, strike_bucket, now)
    if wait is not None:
        raise LimitExceeded("Too many wrong codes from this network.", retry_after_seconds=wait)
    code = normalize_code(raw_code)
    found = (
        await handoffs_repo.find_by_code(connection, _code_hash(runtime, code)) if code else None
    )
    if found is None:
        # Counted outside any transaction, so it stays counted whatever follows.
        await rate_limits.hit(
            connection,
            bucket=strike_bucket,
            limit=WRONG_CODES_PER_WINDOW,
            window=WRONG_CODE_WINDOW,
            now=now,
        )
        raise HandoffError(HandoffProblem.UNKNOWN)
    session_token = new_link_token()
    async with connection.transaction():
        request = await requests_repo.lock_request(connection, found.request_id)
        handoff = await handoffs_repo.for_request(connection, found.request_id, for_update=True)
        if request is None or handoff is None or handoff.code_hash != found.code_hash:
            # replaced (a replayed request) or erased since it was found
            raise HandoffError(HandoffProblem.UNKNOWN)
        _usable(handoff, request, now)
        if not await handoffs_repo.open_with_code(
            connection, request.id, hash_link_token(session_token), now
        ):
            raise HandoffError(HandoffProblem.USED, locale=request.locale)
        # The app may stop showing the code: the parent has it on their own device.
        await notifications.webhook(
            connection,
            runtime,
            RequestStatus.PENDING,
            subject_id=request.subject_id,
            request_id=request.id,
            purposes=request.purposes,
            now=now,
            event_type="consent.handoff_opened",
        )
        await record_event(
            connection,
            actor=GUARDIAN_ACTOR,
            action="consent_request.handoff_opened",
            occurred_at=now,
            subject_id=request.subject_id,
            request_id=request.id,
        )
    return Opened(
        session_token=session_token,
        locale=request.locale,
        address_on_file=request.guardian_email_enc is not None,
    )


def _session_ends_at(handoff: Handoff, runtime: Runtime) -> datetime:
    assert handoff.opened_at is not None
    return handoff.opened_at + timedelta(seconds=runtime.settings.handoff_ttl)


async def load_session(
    connection: Connection, runtime: Runtime, session_token: str, *, for_update: bool = False
) -> Session:
    """The page after the code, while it may still be used (viewing it changes nothing)."""
    now = runtime.clock.now()
    token_hash = hash_link_token(session_token)
    found = await handoffs_repo.find_by_session(connection, token_hash)
    if found is None:
        raise HandoffError(HandoffProblem.SESSION_ENDED)
    if for_update:
        request = await requests_repo.lock_request(connection, found.request_id)
        handoff = await handoffs_repo.find_by_session(connection, token_hash, for_update=True)
    else:
        request = await requests_repo.get_request(connection, found.request_id)
        handoff = found
    if request is None or handoff is None:
        raise HandoffError(HandoffProblem.SESSION_ENDED)
    locale = request.locale
    if lifecycle.request_status_at(request.status, request.expires_at, now) != (
        RequestStatus.PENDING
    ):
        raise HandoffError(HandoffProblem.ENDED, locale=locale)
    if handoff.strikes >= MAX_STRIKES:
        raise HandoffError(HandoffProblem.LOCKED, locale=locale)
    if _session_ends_at(handoff, runtime) <= now:
        raise HandoffError(HandoffProblem.SESSION_ENDED, locale=locale)
    return Session(handoff=handoff, request=request)


def address_on_file(runtime: Runtime, session: Session) -> str | None:
    """The address the app gave, masked; None when the parent is to give theirs."""
    email = notifications.guardian_email(runtime, session.request)
    return mask_email(email) if email is not None else None


def code_sent(runtime: Runtime, session: Session) -> CodeSent | None:
    """Where the latest one-time code went (masked) and until when it works; None before one
    was asked for."""
    handoff = session.handoff
    if handoff.otp_hash is None or handoff.otp_expires_at is None:
        return None
    # an address the parent gave is kept here until confirmed; else the code went to the one
    # on file
    if handoff.email_enc is not None:
        email = runtime.protector.decrypt(
            handoff.email_enc, _address_context(handoff.request_id)
        ).decode()
    else:
        on_file = notifications.guardian_email(runtime, session.request)
        if on_file is None:
            return None
        email = on_file
    return CodeSent(
        masked_address=mask_email(email),
        expires_at=handoff.otp_expires_at,
        locale=session.request.locale,
        country=session.request.country,
    )


async def strike_refused(connection: Connection, runtime: Runtime, session_token: str) -> None:
    """A form on the page after the code that the CSRF check refused counts as a strike."""
    found = await handoffs_repo.find_by_session(connection, hash_link_token(session_token))
    if found is None:
        return
    if await handoffs_repo.strike(connection, found.request_id) >= MAX_STRIKES:
        raise HandoffError(HandoffProblem.LOCKED)


async def send_one_time_code(
    connection: Connection, runtime: Runtime, session_token: str, raw_email: str | None
) -> CodeSent:
    """A one-time code goes to the request's address when the app gave one (``raw_email`` is
    not even looked at), else to the address the parent gave, which becomes the request's
    only once that code comes back."""
    now = runtime.clock.now()
    seen = await load_session(connection, runtime, session_token)
    on_file = notifications.guardian_email(runtime, seen.request)
    try:
        address = parse_email_address(on_file if on_file is not None else (raw_email or ""))
    except InvalidEmailAddress:
        raise AddressProblem(invalid=True) from None
    hashes = runtime.protector.address_hashes(address)
    async with connection.transaction():
        # the order a new request takes them in: subject, guardian, then rows
        await locks.lock_subject(connection, seen.request.subject_id)
        await locks.lock_guardian(connection, hashes[0])
        session = await load_session(connection, runtime, session_token, for_update=True)
        request = session.request
        if notifications.guardian_email(runtime, request) != on_file:
            # the address was confirmed (or deleted) meanwhile
            raise HandoffError(HandoffProblem.SESSION_ENDED, locale=request.locale)
        if session.handoff.otp_sends >= MAX_OTP_SENDS:
            raise AddressProblem(invalid=False, retry_after_seconds=DAY)
        if on_file is None:
            # The same per-address limit as a request opened with the address.
            recent = await requests_repo.recent_requests_for_guardian(
                connection, hashes, now - timedelta(days=1)
            )
            if len([at for at in recent if at != request.created_at]) >= (
                GUARDIAN_REQUESTS_PER_DAY
            ):
                raise AddressProblem(invalid=False, retry_after_seconds=DAY)
        # Every code emailed to the address counts, confirmed or not, whatever the request.
        wait = await rate_limits.hit(
            connection,
            bucket=f"{rate_limits.DAILY}handoff-code-to:{hashes[0].hex()[:32]}",
            limit=OTP_SENDS_PER_ADDRESS_PER_DAY,
            window=DAY,
            now=now,
        )
        if wait is not None:
            raise AddressProblem(invalid=False, retry_after_seconds=wait)
        otp = f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"
        expires_at = min(now + OTP_TTL, request.expires_at)
        await handoffs_repo.set_pending_address(
            connection,
            request.id,
            email_enc=(
                None
                if on_file is not None
                else runtime.protector.encrypt(
                    address.address.encode(), _address_context(request.id)
                )
            ),
            otp_hash=_otp_hash(runtime, request, otp, to_address_on_file=on_file is not None),
            otp_expires_at=expires_at,
        )
        timezone = policy.display_timezone(request.country)
        rendered = emails.render_handoff_code_email(
            locale=request.locale,
            operator_name=runtime.settings.operator_name,
            code=otp,
            expires_at=expires_at,
            child_hint=notifications.child_hint(runtime, request),
            timezone=timezone,
        )
        await outbox.enqueue_email(
            connection,
            runtime.protector,
            topic="handoff_code",
            subject_id=request.subject_id,
            related_id=request.id,
            to=address.address,
            locale=request.locale,
            email=rendered,
            now=now,
            # the code is of no use once sent, and must not outlive its message
            scrub_when_done=True,
        )
        await record_event(
            connection,
            actor=GUARDIAN_ACTOR,
            action="consent_request.handoff_code_sent",
            occurred_at=now,
            subject_id=request.subject_id,
            request_id=request.id,
            details={
                "sends": session.handoff.otp_sends + 1,
                "to": "address_on_file" if on_file is not None else "address_given",
            },
        )
    return CodeSent(
        masked_address=mask_email(address.address),
        expires_at=expires_at,
        locale=request.locale,
        country=request.country,
    )


async def confirm_address(
    connection: Connection, runtime: Runtime, session_token: str, raw_otp: str
) -> str:
    """The emailed code came back: a review link is returned. An address the parent gave
    becomes the request's guardian address, and the new link replaces any earlier one; an
    address the app gave stays, and so do the links emailed to it. A wrong code is a
    strike."""
    now = runtime.clock.now()
    session = await load_session(connection, runtime, session_token)
    handoff = session.handoff
    otp = "".join(raw_otp.split())
    right = (
        handoff.otp_hash is not None
        and len(otp) == OTP_DIGITS
        and otp.isascii()
        and otp.isdigit()
        and secrets.compare_digest(
            _otp_hash(runtime, session.request, otp, to_address_on_file=handoff.email_enc is None),
            handoff.otp_hash,
        )
    )
    if not right:
        if handoff.otp_hash is None:
            # nothing asked for yet: a mistake of the page's order, not a guess
            raise WrongOneTimeCode(expired=True)
        strikes = await handoffs_repo.strike(connection, handoff.request_id)
        if strikes >= MAX_STRIKES:
            async with connection.transaction():
                await record_event(
                    connection,
                    actor=GUARDIAN_ACTOR,
                    action="consent_request.handoff_locked",
                    occurred_at=now,
                    subject_id=session.request.subject_id,
                    request_id=handoff.request_id,
                )
            raise HandoffError(HandoffProblem.LOCKED, locale=session.request.locale)
        raise WrongOneTimeCode()
    if handoff.otp_expires_at is None or handoff.otp_expires_at <= now:
        raise WrongOneTimeCode(expired=True)
    link_token = new_link_token()
    async with connection.transaction():
        await locks.lock_subject(connection, session.request.subject_id)
        locked = await load_session(connection, runtime, session_token, for_update=True)
        request = locked.request
        if (
            locked.handoff.otp_hash != handoff.otp_hash
            or request.guardian_email_enc != session.request.guardian_email_enc
        ):
            # a newer code was asked for, or the address on file corrected, meanwhile
            raise WrongOneTimeCode()
        if locked.handoff.email_enc is None and request.guardian_email_enc is not None:
            # The code went to the address on file, so whoever typed it reads that mailbox:
            # on to the review, nothing replaced.
            if not await handoffs_repo.prove(
                connection, request.id, now
            ) or not await handoffs_repo.set_review_link(
                connection, request.id, hash_link_token(link_token), now
            ):
                raise HandoffError(HandoffProblem.ENDED, locale=request.locale)
            await record_event(
                connection,
                actor=GUARDIAN_ACTOR,
                action="consent_request.guardian_address_proved",
                occurred_at=now,
                subject_id=request.subject_id,
                request_id=request.id,
                details={"channel": "handoff"},
            )
            return link_token
        if locked.handoff.email_enc is None:
            raise WrongOneTimeCode()
        # From here the code went to an address the parent gave; set_guardian refuses it when
        # the request has an address by now.
        email = runtime.protector.decrypt(
            locked.handoff.email_enc, _address_context(request.id)
        ).decode()
        address = parse_email_address(email)
        if not await handoffs_repo.set_guardian(
            connection,
            request.id,
            guardian_email_enc=runtime.protector.encrypt(email.encode(), request.id.bytes),
            guardian_email_hash=runtime.protector.address_hashes(address)[0],
            guardian_ref=runtime.protector.guardian_reference(address.identity),
            link_token_hash=hash_link_token(link_token),
            now=now,
        ) or not await handoffs_repo.confirm(connection, request.id, now):
            raise HandoffError(HandoffProblem.ENDED, locale=request.locale)
        await record_event(
            connection,
            actor=GUARDIAN_ACTOR,
            action="consent_request.guardian_address_confirmed",
            occurred_at=now,
            subject_id=request.subject_id,
            request_id=request.id,
            details={"channel": "handoff"},
        )
    return link_token
