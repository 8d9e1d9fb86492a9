"""The application's request class: Litestar's, with one more client error recognised."""

from __future__ import annotations

from typing import Any

from litestar import Request

from service.http.problems import ProblemError


class JsonRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        """The decoded JSON body; a body nested deeper than the decoder follows is a 400.

        msgspec raises RecursionError (not a decode error) for such a body, which would
        otherwise end as a 500.
        """
        try:
            return await super().json()
        except RecursionError:
            raise ProblemError(
                400, "The request body is not valid JSON for this service: it is nested too deeply."
            ) from None
