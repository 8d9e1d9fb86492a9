"""The main app's API (API-key authenticated): age gate, consent requests, check."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from service.consent import cancellation, handoff, lifecycle, policy
from service.consent.check import CheckAnswer, answer_check
from service.consent.requests import CHILD_HINT_MAX_LENGTH, NewRequest, create_request
from service.consent.runtime import Runtime
from service.db import consent_requests as requests_repo
from service.db import consents as consents_repo
from service.db.api_keys import ApiKey
from service.db.check_cache import CheckRows
from service.db.consent_requests import ConsentRequest
from service.http import handoff_qr
from service.http.api_key_auth import api_key_guard
from service.http.check_lane import CHECK_SCOPES
from service.http.dependencies import Db
from service.http.patterns import (
    PRINTABLE_ASCII_PATTERN,
    PURPOSE_ID_PATTERN,
    SHOWN_TEXT_PATTERN,
    SUBJECT_ID_PATTERN,
    whole,
)
from service.http.problems import API_PROBLEMS, ProblemError, problem_responses
from service.http.staff_auth import api_key_or_staff_guard
from service.i18n import LOCALES
from service.states import ConsentStatus, CreatedStatus, RequestStatus

SubjectId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=SUBJECT_ID_PATTERN)]


class AgeGateQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    birth_date: str
    country: str


class AgeGateAnswer(msgspec.Struct, frozen=True, kw_only=True):
    consent_required: bool
    age: int
    age_of_consent: int
    jurisdiction: str
    basis: str
    consent_required_until: date | None
    # The child must consent together with the guardian (France); the request then needs
    # child_agreed: true. The law that says so, else null.
    joint_consent: bool
    joint_consent_basis: str | None


LOCALE_DESCRIPTION = (
    'The language of the guardian\'s emails and pages: a language tag ("sl", "sl-SI") of '
    + ", ".join(LOCALES)
    + ". Without it, English; any other language is refused (422)."
)


class ConsentRequestIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    subject_id: SubjectId
    birth_date: str
    country: Annotated[str, msgspec.Meta(max_length=8)]
    guardian_email: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=3,
                max_length=254,
                description=(
                    "The guardian's address, emailed the review link. Optional: without it "
                    "only the handoff reaches the parent (the code in the answer's `handoff`, "
                    "typed on the parent's own device, who then gives and confirms their own "
                    "address). With it, the handoff never replaces it: its one-time code goes "
                    "to this address."
                ),
            ),
        ]
        | None
    ) = None
    purposes: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(min_length=1, max_length=32)
    ]
    locale: Annotated[str, msgspec.Meta(max_length=35, description=LOCALE_DESCRIPTION)] | None = (
        None
    )
    # the app's attestation that the child agreed too; required (true) where joint_consent
    child_agreed: bool | None = None
    child_hint: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=CHILD_HINT_MAX_LENGTH,
                pattern=SHOWN_TEXT_PATTERN,
                description=(
                    "Optional: what tells the guardian which account the request is about, "
                    "e.g. the username the child chose. Shown in the email and on the review "
                    "page; stored encrypted and deleted with the guardian's address. Never a "
                    "full name."
                ),
            ),
        ]
        | None
    ) = None


class HandoffOut(msgspec.Struct, frozen=True, kw_only=True):
    """The second channel, on the parent's own device: show the code and the URL (or the QR
    code of ``GET /v1/consent-requests/{id}/handoff.svg``) on the child's screen."""

    code: Annotated[
        str,
        msgspec.Meta(
            pattern=whole("[A-Z2-9]{4}-[A-Z2-9]{4}"),
            description=(
                "Typed by the parent at `url`; works once, until `expires_at`. Only its hash "
                "is stored: a replay with the same Idempotency-Key answers a new code, which "
                "replaces this one."
            ),
        ),
    ]
    url: str
    expires_at: datetime


class ConsentRequestOut(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: uuid.UUID | None = None
    subject_id: str
    status: CreatedStatus
    expires_at: datetime | None = None
    # 201 only; absent from a replay once the handoff can no longer be used
    handoff: HandoffOut | None = None
    age: int | None = None
    age_of_consent: int | None = None
    jurisdiction: str | None = None
    basis: str | None = None


class ConsentRequestStatus(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    subject_id: str
    status: RequestStatus
    purposes: list[str]
    jurisdiction: str
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None


class ConsentRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    request_id: uuid.UUID
    subject_id: str
    status: ConsentStatus
    purposes: list[str]
    jurisdiction: str
    method: str
    policy_version: str
    guardian: str
    granted_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    token: str | None
    # how each purpose was verified ({purpose: method})
    purpose_methods: dict[str, str]
    # purposes the guardian withdrew while the rest stayed granted, oldest first
    withdrawn_purposes: list[consents_repo.PurposeWithdrawal]


def consent_record(consent: consents_repo.Consent, now: datetime) -> ConsentRecord:
    # A lapse the worker has not swept yet is still a lapse (the check answers the same).
    status = lifecycle.consent_status_at(consent.status, consent.expires_at, now)
    return ConsentRecord(
        id=consent.id,
        request_id=consent.request_id,
        subject_id=consent.subject_id,
        status=status,
        purposes=consent.purposes,
        jurisdiction=consent.jurisdiction,
        method=consent.method,
        policy_version=consent.policy_version,
        guardian=consent.guardian_ref,
        granted_at=consent.granted_at,
        expires_at=consent.expires_at,
        ended_at=consent.ended_at,
        end_reason=consent.end_reason,
        token=consent.token if status == ConsentStatus.GRANTED else None,
        purpose_methods=consent.purpose_methods,
        withdrawn_purposes=consent.withdrawn_purposes,
    )


# Examples for the OpenAPI document (service.http.contract): a request body, responses by status.
_REQUEST_ID = "0b7d2f4e-3c1a-4e8b-9d6f-5a2c1e0f4b7a"
_CONSENT_ID = "6f1c9a2e-8b4d-4f7a-a3e5-2d9b7c1e0a48"
AGE_GATE_EXAMPLES = {
    "request": {"birth_date": "2015-04-01", "country": "SI"},
    200: {
        "consent_required": True,
        "age": 11,
        "age_of_consent": 15,
        "jurisdiction": "SI",
        "basis": "GDPR Art. 8(1); ZVOP-2 Art. 8 (SI)",
        "consent_required_until": "2030-04-01",
    },
}
CONSENT_REQUEST_EXAMPLES = {
    "request": {
        "subject_id": "child-1",
        "birth_date": "2015-04-01",
        "country": "SI",
        "guardian_email": "parent@example.com",
        "purposes": ["tutoring", "progress_reports"],
        "locale": "sl",
    },
    201: {
        "id": _REQUEST_ID,
        "subject_id": "child-1",
        "status": "pending",
        "expires_at": "2026-01-08T10:00:00Z",
        "handoff": {
            "code": "KX7M-4RQT",
            "url": "https://consent.example.com/guardian/code",
            "expires_at": "2026-01-01T10:30:00Z",
        },
    },
}
CHECK_EXAMPLES = {
    200: {
        "subject_id": "child-1",
        "purpose": "tutoring",
        "allowed": True,
        "status": "granted",
        "consent_id": _CONSENT_ID,
        "expires_at": "2030-04-01T00:00:00Z",
        "token": "eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9.eyJzdWIiOiJjaGlsZC0xIn0.c2lnbmF0dXJl",
    },
}
REQUEST_STATUS_EXAMPLES = {
    200: {
        "id": _REQUEST_ID,
        "subject_id": "child-1",
        "status": "granted",
        "purposes": ["tutoring", "progress_reports"],
        "jurisdiction": "SI",
        "created_at": "2026-01-01T10:00:00Z",
        "expires_at": "2026-01-08T10:00:00Z",
        "decided_at": "2026-01-01T18:30:00Z",
    },
}


CANCELLED_EXAMPLE = {
    **REQUEST_STATUS_EXAMPLES[200],
    "status": "cancelled",
    "decided_at": "2026-01-02T09:00:00Z",
}


def request_status(found: ConsentRequest, now: datetime) -> ConsentRequestStatus:
    return ConsentRequestStatus(
        id=found.id,
        subject_id=found.subject_id,
        status=lifecycle.request_status_at(found.status, found.expires_at, now),
        purposes=found.purposes,
        jurisdiction=found.country,
        created_at=found.created_at,
        expires_at=found.expires_at,
        decided_at=found.decided_at,
    )


class AppController(Controller):
    path = "/v1"
    guards = [api_key_guard]
    tags = ["main app"]

    @post(
        "/age-gate",
        status_code=200,
        summary="Does this child need a guardian's consent?",
        opt={"examples": AGE_GATE_EXAMPLES},
        responses=problem_responses(*API_PROBLEMS, 413, 422),
    )
    async def age_gate(self, data: JSONBody[AgeGateQuery], state: State) -> AgeGateAnswer:
        runtime: Runtime = state.runtime
        try:
            decision = policy.decide_age(
                policy.parse_birth_date(data.birth_date),
                data.country,
                runtime.clock.now(),
                runtime.settings.min_age,
            )
        except (policy.InvalidBirthDate, policy.UnknownCountry) as exc:
            raise ProblemError(422, str(exc)) from None
        return AgeGateAnswer(**msgspec.structs.asdict(decision))

    @post(
        "/consent-requests",
        opt={"scopes": ("consent:request",), "examples": CONSENT_REQUEST_EXAMPLES},
        summary="Open a consent request; the guardian is emailed",
        description=(
            "With `guardian_email`, the guardian is emailed the review link. Either way the "
            "201 carries `handoff`: a code for the child's screen that the parent types at "
            "`handoff.url` on their own device, enters a one-time code emailed to the "
            "request's address, and decides. With `guardian_email` that address stays the "
            "request's (the one-time code goes there; the emailed link keeps working until a "
            "decision). `guardian_email` may be left out: then the handoff is the only "
            "channel, and the parent gives and confirms their own address there."
        ),
        responses=problem_responses(*API_PROBLEMS, 409, 413, 422, 429),
    )
    async def create_request(
        self,
        data: JSONBody[ConsentRequestIn],
        request: Request[Any, Any, Any],
        state: State,
        db: Db,
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(
                name="Idempotency-Key",
                max_length=255,
                min_length=1,
                pattern=PRINTABLE_ASCII_PATTERN,
            ),
        ] = None,
    ) -> Response[ConsentRequestOut]:
        key: ApiKey = request.state.api_key
        outcome = await create_request(
            db,
            state.runtime,
            body=NewRequest(**msgspec.structs.asdict(data)),
            api_key_id=key.id,
            api_key_name=key.name,
            idempotency_key=idempotency_key,
        )
        body = msgspec.convert(outcome.body, ConsentRequestOut)
        return Response(body, status_code=outcome.status_code)

    @get(
        "/consent-requests/{request_id:uuid}",
        summary="Status of a consent request",
        opt={"examples": REQUEST_STATUS_EXAMPLES},
        responses=problem_responses(*API_PROBLEMS),
    )
    async def get_request(
        self, request_id: FromPath[uuid.UUID], state: State, db: Db
    ) -> ConsentRequestStatus:
        found = await requests_repo.get_request(db, request_id)
        if found is None:
            raise ProblemError(404, "No consent request with this id.")
        return request_status(found, state.runtime.clock.now())

    @get(
        "/consent-requests/{request_id:uuid}/handoff.svg",
        summary="QR code of the handoff URL, for the child's screen",
        description=(
            "An SVG image of a QR code that opens the page where the parent types the handoff "
            "code (`handoff.url` of the 201). It encodes the URL only, never the code: the "
            "parent reads the code off the child's screen. `Cache-Control: no-store`. 404 for "
            "an unknown request; 409 with `current_status` once it is no longer pending; 410 "
            "once its handoff code was used, is locked or has expired."
        ),
        media_type="image/svg+xml",
        responses=problem_responses(*API_PROBLEMS, 409, 410),
    )
    async def handoff_svg(
        self, request_id: FromPath[uuid.UUID], state: State, db: Db
    ) -> Response[bytes]:
        target, locale = await handoff.qr_target(db, state.runtime, request_id)
        return Response(
            handoff_qr.svg(target, locale),
            media_type="image/svg+xml",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    @post(
        "/consent-requests/{request_id:uuid}/cancel",
        opt={"scopes": ("consent:request",), "examples": {200: CANCELLED_EXAMPLE}},
        status_code=200,
        summary="Cancel a pending consent request; the guardian's address is deleted",
        description=(
            "For a signup the child abandoned or an account the app deleted. The request "
            "becomes `cancelled`, the guardian's address is deleted at once, an unsent email "
            "is not sent, the guardian's link says the request was cancelled and the app "
            "receives `consent.cancelled`. 409 with `current_status` when the request is no "
            "longer pending (granted, denied, expired, or cancelled already)."
        ),
        responses=problem_responses(*API_PROBLEMS, 409),
    )
    async def cancel_request(
        self,
        request_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
        state: State,
        db: Db,
    ) -> ConsentRequestStatus:
        key: ApiKey = request.state.api_key
        cancelled = await cancellation.cancel_request(
            db, state.runtime, request_id, actor=f"app:{key.name}"
        )
        return request_status(cancelled, state.runtime.clock.now())

    @get(
        "/consents/check",
        opt={"scopes": CHECK_SCOPES, "examples": CHECK_EXAMPLES},
        summary="May this subject use this purpose now? (503, never allowed, when unknown)",
        responses=problem_responses(*API_PROBLEMS, 422),
    )
    async def check(
        self,
        state: State,
        subject_id: Annotated[
            str, QueryParameter(min_length=1, max_length=128, pattern=SUBJECT_ID_PATTERN)
        ],
        purpose: Annotated[
            str, QueryParameter(min_length=1, max_length=64, pattern=PURPOSE_ID_PATTERN)
        ],
    ) -> CheckAnswer:
        runtime: Runtime = state.runtime
        if runtime.catalogue.get(purpose) is None:
            raise ProblemError(
                422, f"Unknown purpose {purpose!r}; known: {', '.join(runtime.catalogue.ids)}."
            )
        check_rows: CheckRows = state.check_rows
        row = await check_rows.read(subject_id)
        return answer_check(row, subject_id=subject_id, purpose=purpose, now=runtime.clock.now())


@get(
    "/v1/consents/{consent_id:uuid}",
    guards=[api_key_or_staff_guard],
    opt={"scopes": ("consent:check",), "roles": ("support", "admin")},
    tags=["main app", "staff"],
    summary="A consent record (API key with consent:check, or staff)",
    responses=problem_responses(*API_PROBLEMS),
)
async def get_consent(consent_id: FromPath[uuid.UUID], state: State, db: Db) -> ConsentRecord:
    consent = await consents_repo.get_consent(db, consent_id)
    if consent is None:
        raise ProblemError(404, "No consent with this id.")
    return consent_record(consent, state.runtime.clock.now())
