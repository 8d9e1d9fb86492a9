"""Rights requests for staff (support): record, list, read and move on, against their due date."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody, QueryParameter

from service.consent import data_requests
from service.consent.data_requests import DataRequestPage, DataRequestView
from service.http.dependencies import Db
from service.http.patterns import SUBJECT_ID_PATTERN, TEXT_PATTERN
from service.http.problems import API_PROBLEMS, ProblemError, problem_responses
from service.http.staff_auth import staff_guard
from service.security.staff_tokens import StaffPrincipal
from service.states import DataRequestChannel, DataRequestKind, DataRequestStatus

PAGE_LIMIT_DEFAULT = 50
PAGE_LIMIT_MAX = 100
# Deeper than anyone pages by hand; narrow the list with its filters instead.
PAGE_OFFSET_MAX = 10_000

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=2000, pattern=TEXT_PATTERN)]


class DataRequestIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    subject_id: Annotated[
        str, msgspec.Meta(min_length=1, max_length=128, pattern=SUBJECT_ID_PATTERN)
    ]
    kind: DataRequestKind
    channel: DataRequestChannel
    # internal: stored encrypted, shown to staff and in the subject's export, erased with it
    note: Text | None = None
    # when the guardian's letter, email or call came in; now when left out
    received_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


class DataRequestChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    status: DataRequestStatus | None = None
    outcome: Text | None = None
    refusal_reason: Text | None = None
    note: Text | None = None


def _staff_sub(request: Request[Any, Any, Any]) -> str:
    principal: StaffPrincipal = request.state.staff
    return principal.sub


def _text(name: str, value: str | None) -> str | None:
    """A text with its surrounding blanks removed; one of blanks alone says nothing."""
    if value is None:
        return None
    stripped = value.strip()
    if not stripped:
        raise ProblemError(422, f"{name} holds only blanks.")
    return stripped


class DataRequestController(Controller):
    path = "/v1/data-requests"
    guards = [staff_guard]
    tags = ["staff"]

    @post(
        "/",
        opt={
            "roles": ("support",),
            "examples": {
                "request": {
                    "subject_id": "child-1",
                    "kind": "access",
                    "channel": "staff_letter",
                    "note": "Letter from the mother, asks for a copy of everything.",
                }
            },
        },
        status_code=201,
        summary="Record a rights request with its due date (support)",
        responses=problem_responses(*API_PROBLEMS, 413, 422),
    )
    async def create(
        self, data: JSONBody[DataRequestIn], request: Request[Any, Any, Any], state: State, db: Db
    ) -> DataRequestView:
        return await data_requests.open_request(
            db,
            state.runtime,
            subject_id=data.subject_id,
            kind=data.kind,
            channel=data.channel,
            note=_text("note", data.note),
            received_at=data.received_at,
            staff=_staff_sub(request),
        )

    @get(
        "/",
        opt={"roles": ("support", "admin")},
        summary="Rights requests, overdue first, then by due date (support)",
        responses=problem_responses(*API_PROBLEMS),
    )
    async def list_requests(
        self,
        state: State,
        db: Db,
        status: Annotated[DataRequestStatus | None, QueryParameter()] = None,
        kind: Annotated[DataRequestKind | None, QueryParameter()] = None,
        overdue: Annotated[bool | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=PAGE_LIMIT_MAX)] = PAGE_LIMIT_DEFAULT,
        offset: Annotated[int, QueryParameter(ge=0, le=PAGE_OFFSET_MAX)] = 0,
    ) -> DataRequestPage:
        return await data_requests.list_requests(
            db,
            state.runtime,
            status=status,
            kind=kind,
            overdue=overdue,
            limit=limit,
            offset=offset,
        )

    @get(
        "/{request_id:uuid}",
        opt={"roles": ("support", "admin")},
        summary="A rights request (support)",
        responses=problem_responses(*API_PROBLEMS),
    )
    async def get_request(
        self, request_id: FromPath[uuid.UUID], state: State, db: Db
    ) -> DataRequestView:
        return await data_requests.get_request(db, state.runtime, request_id)

    @patch(
        "/{request_id:uuid}",
        opt={"roles": ("support",)},
        summary="Move a rights request on: in_progress, done, or refused with a reason (support)",
        description="done and refused are final: changing a closed request is a 409.",
        responses=problem_responses(*API_PROBLEMS, 409, 413, 422),
    )
    async def update(
        self,
        request_id: FromPath[uuid.UUID],
        data: JSONBody[DataRequestChange],
        request: Request[Any, Any, Any],
        state: State,
        db: Db,
    ) -> DataRequestView:
        return await data_requests.update_request(
            db,
            state.runtime,
            request_id,
            status=data.status,
            outcome=_text("outcome", data.outcome),
            refusal_reason=_text("refusal_reason", data.refusal_reason),
            note=_text("note", data.note),
            staff=_staff_sub(request),
        )
