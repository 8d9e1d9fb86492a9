"""The review page asks; it does not answer for the guardian: no optional purpose and no
attestation starts ticked, and a re-shown form keeps exactly what the guardian chose."""

from __future__ import annotations

import re
from typing import Any

from tests.support.flows import open_request
from tests.support.guardian_client import csrf_token, path_of
from tests.support.service import Service

SUBJECT = "child-choices-1"
GUARDIAN = "choices.parent@example.com"


def checked(page: str) -> dict[str, bool]:
    """Each checkbox's id and whether it is ticked."""
    boxes = re.findall(r'<input type="checkbox" id="([\w-]+)"[^>]*>', page)
    tags = re.findall(r'<input type="checkbox" id="[\w-]+"[^>]*>', page)
    return {box: " checked" in tag for box, tag in zip(boxes, tags, strict=True)}


async def test_only_the_required_purpose_starts_ticked(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    _, link = await open_request(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    page = await svc.client.get(path_of(link))
    assert page.status_code == 200
    assert checked(page.text) == {
        "purpose-tutoring": True,
        "purpose-progress_reports": False,
        "purpose-newsletter": False,
        "attestation": False,
    }


async def test_a_reshown_form_keeps_exactly_the_guardians_choice(
    svc: Service, api: dict[str, str], mailbox: Any
) -> None:
    _, link = await open_request(svc, api, mailbox, subject_id=SUBJECT, email=GUARDIAN)
    path = path_of(link)
    review = await svc.client.get(path)
    answer = await svc.client.post(
        path,
        data={
            "_csrf_token": csrf_token(review.text),
            "decision": "grant",
            "purposes": ["tutoring", "newsletter"],
        },
    )
    assert answer.status_code == 422  # no attestation
    assert checked(answer.text) == {
        "purpose-tutoring": True,
        "purpose-progress_reports": False,
        "purpose-newsletter": True,
        "attestation": False,
    }
