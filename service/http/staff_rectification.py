"""Rectification for staff (support): a guardian's new address (confirmed by that address before
it is used) and a child's corrected birth date."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody, PathParameter

from service.consent import rectification
from service.consent.errors import FormError, InvalidAddressChange, InvalidInput
from service.consent.rectification import AddressChangeStarted, BirthDateCorrection
from service.http.dependencies import Db
from service.http.patterns import SUBJECT_ID_PATTERN
from service.http.problems import API_PROBLEMS, problem_responses
from service.http.staff_auth import staff_guard
from service.security.staff_tokens import StaffPrincipal
from service.states import DataRequestChannel

SubjectPath = Annotated[
    str, PathParameter(min_length=1, max_length=128, pattern=SUBJECT_ID_PATTERN)
]
# How the guardian's request reached staff (recorded on the rights request staff open here).
StaffChannel = Literal["staff_letter", "staff_email", "staff_phone"]


class GuardianEmailIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
    # the rectification request this answers; without it, one is recorded now
    data_request_id: uuid.UUID | None = None
    channel: StaffChannel = "staff_email"


class BirthDateIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    birth_date: Annotated[str, msgspec.Meta(min_length=10, max_length=10)]
    # the child's country, if that was wrong too; else the request's
    country: Annotated[str, msgspec.Meta(max_length=8)] | None = None
    data_request_id: uuid.UUID | None = None
    channel: StaffChannel = "staff_email"


def _staff_sub(request: Request[Any, Any, Any]) -> str:
    principal: StaffPrincipal = request.state.staff
    return principal.sub


_EMAIL_PROBLEMS = {
    FormError.EMAIL_INVALID: "email: not an address this service sends to.",
    FormError.EMAIL_UNCHANGED: "email: this is already the guardian's address.",
}


class RectificationController(Controller):
    path = "/v1"
    guards = [staff_guard]
    tags = ["staff"]

    @post(
        "/consents/{consent_id:uuid}/guardian-email",
        opt={
            "roles": ("support",),
            "examples": {"request": {"email": "new.address@example.com"}},
        },
        status_code=202,
        summary="Start a change of the guardian's address; the new address must confirm (support)",
        description=(
            "Emails the new address a link (valid 24 hours). Until it is confirmed there, every "
            "email still goes to the current address and the consent is unchanged. Once "
            "confirmed: same consent id, token re-issued for the new guardian reference, the "
            "previous address told, the rectification request done."
        ),
        responses=problem_responses(*API_PROBLEMS, 404, 409, 413, 422, 429),
    )
    async def change_guardian_email(
        self,
        consent_id: FromPath[uuid.UUID],
        data: JSONBody[GuardianEmailIn],
        request: Request[Any, Any, Any],
        state: State,
        db: Db,
    ) -> AddressChangeStarted:
        staff = _staff_sub(request)
        try:
            return await rectification.start_address_change(
                db,
                state.runtime,
                consent_id,
                new_email=data.email,
                actor=f"staff:{staff}",
                channel=DataRequestChannel(data.channel),
                data_request_id=data.data_request_id,
                handler=staff,
            )
        except InvalidAddressChange as invalid:
            raise InvalidInput(" ".join(_EMAIL_PROBLEMS[e] for e in invalid.errors)) from None

    @post(
        "/subjects/{subject_id:str}/birth-date",
        opt={
            "roles": ("support",),
            "examples": {"request": {"birth_date": "2012-09-30", "country": "SI"}},
        },
        status_code=200,
        summary="Correct a child's birth date: age of consent and expiry recomputed (support)",
        description=(
            "Recomputes the age of consent and the end of the live consent and of a pending "
            "request. A child who needs no guardian's consent any more ends the consent with "
            "status not_required (webhook consent.not_required) and closes the pending request, "
            "deleting the guardian's address. The birth date is stored only on a pending request."
        ),
        responses=problem_responses(*API_PROBLEMS, 404, 409, 413, 422),
    )
    async def correct_birth_date(
        self,
        subject_id: SubjectPath,
        data: JSONBody[BirthDateIn],
        request: Request[Any, Any, Any],
        state: State,
        db: Db,
    ) -> BirthDateCorrection:
        return await rectification.correct_birth_date(
            db,
            state.runtime,
            subject_id,
            birth_date=data.birth_date,
            country=data.country,
            data_request_id=data.data_request_id,
            channel=DataRequestChannel(data.channel),
            staff=_staff_sub(request),
        )
