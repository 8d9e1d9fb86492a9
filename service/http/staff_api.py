"""Support staff and admins (staff JWT): revoke, audit trail, subject lookup, export; erasure
(staff, or the main app with an API key)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter

from service.consent import endings, reminders, revocation_reasons, subjects, unlocking
from service.consent.runtime import Runtime
from service.db.api_keys import ApiKey
from service.db.audit_events import AuditEvent
from service.http.app_api import ConsentRecord, ConsentRequestStatus, consent_record, request_status
from service.http.dependencies import Db
from service.http.patterns import (
    EMAIL_LOOKUP_PATTERN,
    LANGUAGE_TAG_PATTERN,
    SHOWN_TEXT_PATTERN,
    SUBJECT_ID_PATTERN,
    TEXT_PATTERN,
)
from service.http.problems import API_PROBLEMS, ProblemError, problem_responses
from service.http.staff_auth import api_key_or_staff_guard, staff_guard
from service.i18n import negotiate_locale
from service.security.staff_tokens import StaffPrincipal

SubjectPath = Annotated[
    str, PathParameter(min_length=1, max_length=128, pattern=SUBJECT_ID_PATTERN)
]


GUARDIAN_REASON_DESCRIPTION = (
    "What the guardian reads in the revocation email, in the request's language. Either a "
    "preset, written `preset:<id>` and translated into the guardian's language: "
    + "; ".join(
        f"`preset:{pid}` ({text!r})" for pid, text in revocation_reasons.PRESET_REASONS.items()
    )
    + ". Or any other text, written for the guardian and shown to them exactly as written (one "
    "line). A text starting with `preset:` that names no preset is 422. Without it the email "
    "says neutrally that support ended the consent; `reason` and `note` are never sent."
)


class RevokeIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Internal: kept in the audit trail and on the consent record, never sent to the guardian.
    reason: Annotated[
        str,
        msgspec.Meta(
            min_length=3,
            max_length=1000,
            pattern=TEXT_PATTERN,
            description="Why staff revoke (internal: the audit trail, never emailed).",
        ),
    ]
    note: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=2000,
                pattern=TEXT_PATTERN,
                description="An internal note for the audit trail; never sent to the guardian.",
            ),
        ]
        | None
    ) = None
    guardian_reason: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=500,
                pattern=SHOWN_TEXT_PATTERN,
                description=GUARDIAN_REASON_DESCRIPTION,
                examples=["preset:guardian_request"],
            ),
        ]
        | None
    ) = None


class SubjectSearchIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    guardian_email: Annotated[
        str, msgspec.Meta(min_length=3, max_length=254, pattern=EMAIL_LOOKUP_PATTERN)
    ]


class EventList(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    events: list[AuditEvent]


def _staff(request: Request[Any, Any, Any]) -> StaffPrincipal:
    principal: StaffPrincipal = request.state.staff
    return principal


def _reader(request: Request[Any, Any, Any]) -> str:
    """The staff member reading a subject's data, as the audit trail names them."""
    return f"staff:{_staff(request).sub}"


class StaffController(Controller):
    path = "/v1"
    guards = [staff_guard]
    tags = ["staff"]

    @post(
        "/consents/{consent_id:uuid}/revoke",
        opt={
            "roles": ("support",),
            "examples": {
                "request": {
                    "reason": "The guardian asked by phone to stop tutoring.",
                    "note": "Called on Monday; spoke with the mother.",
                    "guardian_reason": "preset:guardian_request",
                }
            },
        },
        status_code=200,
        summary="Revoke a granted consent with a reason (support)",
        description=(
            "`reason` (required) and `note` (optional) are internal: they stay in the audit "
            "trail, never in the guardian's email. `guardian_reason` is what the guardian "
            "reads: " + GUARDIAN_REASON_DESCRIPTION
        ),
        responses=problem_responses(*API_PROBLEMS, 409, 413, 422),
    )
    async def revoke(
        self,
        consent_id: FromPath[uuid.UUID],
        data: JSONBody[RevokeIn],
        request: Request[Any, Any, Any],
        state: State,
        db: Db,
    ) -> ConsentRecord:
        runtime: Runtime = state.runtime
        guardian_reason = revocation_reasons.parse_guardian_reason(data.guardian_reason)
        revoked = await endings.revoke(
            db,
            runtime,
            consent_id,
            reason=data.reason.strip(),
            staff=_staff(request).sub,
            note=(data.note or "").strip() or None,
            guardian_reason=guardian_reason,
        )
        return consent_record(revoked, runtime.clock.now())

    @post(
        "/consent-requests/{request_id:uuid}/unlock",
        opt={"roles": ("support",)},
        status_code=200,
        summary="Unlock a pending request's review link locked by refused forms (support)",
        description=(
            "A review link locks after too many refused (forged or replayed) form submissions. "
            "This clears the count so the guardian can decide again. A request that is not "
            "pending, or whose link is not locked, is 409."
        ),
        responses=problem_responses(*API_PROBLEMS, 404, 409),
    )
    async def unlock_request(
        self,
        request_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
        state: State,
        db: Db,
    ) -> ConsentRequestStatus:
        runtime: Runtime = state.runtime
        unlocked = await unlocking.unlock_review_link(
            db, runtime, request_id, actor=_reader(request)
        )
        return request_status(unlocked, runtime.clock.now())

    @post(
        "/consents/{consent_id:uuid}/unlock-withdrawal",
        opt={"roles": ("support",)},
        status_code=200,
        summary="Unlock a live consent's withdrawal link locked by refused forms (support)",
        description=(
            "A withdrawal link locks for a while after too many refused form submissions; this "
            "lifts the lock now. A consent that is not live, or whose link is not locked, is 409."
        ),
        responses=problem_responses(*API_PROBLEMS, 404, 409),
    )
    async def unlock_withdrawal(
        self,
        consent_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
        state: State,
        db: Db,
    ) -> ConsentRecord:
        runtime: Runtime = state.runtime
        unlocked = await unlocking.unlock_withdrawal_link(
            db, runtime, consent_id, actor=_reader(request)
        )
        return consent_record(unlocked, runtime.clock.now())

    @post(
        "/consent-requests/{request_id:uuid}/remind",
        opt={"roles": ("support",)},
        status_code=200,
        summary="Email the guardian of a pending request a reminder now (support)",
        description=(
            "The same reminder the worker sends ahead of the link's expiry, with a link of its "
            "own (the first email's link keeps working). Limits: one per request per hour, "
            f"{reminders.GUARDIAN_REMINDERS_PER_DAY} per guardian address in 24 hours (429 "
            "with Retry-After); a request that is no longer pending is 409."
        ),
        responses=problem_responses(*API_PROBLEMS, 404, 409, 429),
    )
    async def remind(
        self,
        request_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
        state: State,
        db: Db,
    ) -> reminders.ReminderSent:
        return await reminders.remind(
            db, state.runtime, request_id, actor=f"staff:{_staff(request).sub}"
        )

    @post(
        "/subjects",
        opt={"roles": ("support", "admin")},
        status_code=200,
        summary="Find the subjects a guardian email address was asked about (support)",
        description=(
            "The address travels in the JSON body, never in the URL, so no proxy, server or "
            "browser history records it."
        ),
        responses=problem_responses(*API_PROBLEMS),
    )
    async def find_subjects(
        self,
        data: JSONBody[SubjectSearchIn],
        request: Request[Any, Any, Any],
        state: State,
        db: Db,
    ) -> subjects.SubjectSearch:
        return await subjects.find_by_guardian(
            db, state.runtime, data.guardian_email, reader=_reader(request)
        )

    @get(
        "/subjects",
        opt={"roles": ("support", "admin")},
        summary="Former form of the guardian lookup: always refused (use POST /v1/subjects)",
        deprecated=True,
        responses=problem_responses(*API_PROBLEMS, 400),
    )
    async def find_subjects_by_url(self) -> None:
        # The lookup's former form; refused, whatever its query says, without echoing it.
        raise ProblemError(
            400,
            "A guardian address is never sent in a URL: look it up with POST /v1/subjects and "
            'the JSON body {"guardian_email": "..."}.',
        )

    @get(
        "/subjects/{subject_id:str}",
        opt={"roles": ("support", "admin")},
        summary="A subject's requests and consents, guardian email masked (support)",
        responses=problem_responses(*API_PROBLEMS),
    )
    async def subject(
        self, subject_id: SubjectPath, request: Request[Any, Any, Any], state: State, db: Db
    ) -> subjects.SubjectOverview:
        return await subjects.overview(db, state.runtime, subject_id, reader=_reader(request))

    @get(
        "/subjects/{subject_id:str}/events",
        opt={"roles": ("support", "admin")},
        summary="The subject's audit trail, oldest first (support)",
        responses=problem_responses(*API_PROBLEMS),
    )
    async def events(
        self, subject_id: SubjectPath, request: Request[Any, Any, Any], state: State, db: Db
    ) -> EventList:
        trail = await subjects.events(db, state.runtime, subject_id, reader=_reader(request))
        return EventList(subject_id=subject_id, events=trail)

    @get(
        "/subjects/{subject_id:str}/export",
        opt={"roles": ("admin",)},
        summary="Everything stored about the child and guardian (admin; GDPR Art. 15/20)",
        description=(
            "With the Art. 15(1)(a)-(h) information in `information`. Without `consent_id`: "
            "the operator's complete record, every guardian's address included (for the "
            "operator's own use). With `consent_id`: the copy for that consent's guardian, "
            "which is what a guardian who asks for their data receives (Art. 15(4): no other "
            "guardian's address, emails or staff notes). Every export is an audit event."
        ),
        responses=problem_responses(*API_PROBLEMS, 404),
    )
    async def export(
        self,
        subject_id: SubjectPath,
        request: Request[Any, Any, Any],
        state: State,
        db: Db,
        consent_id: Annotated[uuid.UUID | None, QueryParameter()] = None,
        locale: Annotated[
            str | None,
            QueryParameter(
                min_length=2,
                max_length=35,
                pattern=LANGUAGE_TAG_PATTERN,
                description="The language of the `information` texts; English if not shipped.",
            ),
        ] = None,
    ) -> subjects.SubjectExport:
        return await subjects.export(
            db,
            state.runtime,
            subject_id,
            reader=_reader(request),
            guardian_of=consent_id,
            locale=negotiate_locale(locale),
        )


@delete(
    "/v1/subjects/{subject_id:str}",
    guards=[api_key_or_staff_guard],
    opt={"roles": ("admin",), "scopes": ("subject:erase",)},
    tags=["staff", "main app"],
    status_code=200,
    summary="Erase a subject's personal data everywhere, keeping a tombstone (admin, or the app)",
    description=(
        "For staff (admin) on a guardian's request, and for the main app (an API key with "
        "`subject:erase`) when the child's account was deleted. The audit event names the staff "
        "member (`staff:<sub>`) or the API key (`app:<key name>`)."
    ),
    responses=problem_responses(*API_PROBLEMS),
)
async def erase_subject(
    subject_id: SubjectPath, request: Request[Any, Any, Any], state: State, db: Db
) -> subjects.ErasureReceipt:
    key: ApiKey | None = getattr(request.state, "api_key", None)
    actor = f"app:{key.name}" if key is not None else f"staff:{_staff(request).sub}"
    return await subjects.erase(db, state.runtime, subject_id, actor=actor)
