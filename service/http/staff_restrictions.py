"""Restriction of a subject's processing for staff (support): place and lift (GDPR Art. 18)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter

from service.consent import restrictions
from service.consent.restrictions import RestrictionRecord
from service.http.dependencies import Db
from service.http.patterns import SUBJECT_ID_PATTERN, TEXT_PATTERN
from service.http.problems import API_PROBLEMS, ProblemError, problem_responses
from service.http.staff_auth import staff_guard
from service.security.staff_tokens import StaffPrincipal

SubjectPath = Annotated[
    str, PathParameter(min_length=1, max_length=128, pattern=SUBJECT_ID_PATTERN)
]

_RECORD = {
    "subject_id": "child-1",
    "reason": "The guardian contests the birth date; restricted until it is verified.",
    "restricted_by": "support-7",
    "restricted_at": "2026-01-05T09:00:00Z",
}


class RestrictionIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # no control characters: the reason is kept in the audit trail and the subject's export
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=1000, pattern=TEXT_PATTERN)]


def _staff_sub(request: Request[Any, Any, Any]) -> str:
    principal: StaffPrincipal = request.state.staff
    return principal.sub


class RestrictionController(Controller):
    path = "/v1/subjects/{subject_id:str}/restriction"
    guards = [staff_guard]
    tags = ["staff"]

    @post(
        "/",
        opt={
            "roles": ("support",),
            "examples": {"request": {"reason": _RECORD["reason"]}, 201: _RECORD},
        },
        status_code=201,
        summary="Restrict a subject's processing: check allows no purpose (support; Art. 18)",
        description=(
            "From the commit on, `GET /v1/consents/check` answers `allowed: false, status: "
            '"restricted"` for every purpose, on every replica; the data stays. A consent given '
            "meanwhile is recorded but allows nothing until the restriction is lifted. The main "
            "app receives `subject.restricted`. 404 when nothing is stored about the subject; "
            "409 when it is restricted already (the first restriction and its reason stay)."
        ),
        responses=problem_responses(*API_PROBLEMS, 404, 409, 413),
    )
    async def restrict(
        self,
        subject_id: SubjectPath,
        data: JSONBody[RestrictionIn],
        request: Request[Any, Any, Any],
        state: State,
        db: Db,
    ) -> RestrictionRecord:
        reason = data.reason.strip()
        if len(reason) < 3:
            raise ProblemError(422, "reason must say why, in at least 3 characters.")
        return await restrictions.restrict(
            db, state.runtime, subject_id, reason=reason, staff=_staff_sub(request)
        )

    @delete(
        "/",
        opt={
            "roles": ("support",),
            "examples": {
                200: {**_RECORD, "lifted_at": "2026-01-09T15:00:00Z", "lifted_by": "support-7"}
            },
        },
        status_code=200,
        summary="Lift a subject's restriction: check answers as before (support)",
        description=(
            "The main app receives `subject.unrestricted`. 404 when the subject is not restricted."
        ),
        responses=problem_responses(*API_PROBLEMS, 404),
    )
    async def lift(
        self, subject_id: SubjectPath, request: Request[Any, Any, Any], state: State, db: Db
    ) -> RestrictionRecord:
        return await restrictions.lift(db, state.runtime, subject_id, staff=_staff_sub(request))
