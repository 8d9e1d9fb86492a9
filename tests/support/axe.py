"""axe-core in a real page: run its WCAG 2.2 A/AA rules and fail on serious or critical
violations.

axe-core is an npm package pinned in ``tests/axe/package-lock.json`` (``make axe``, part of
``make test``, installs it with ``npm ci``). The guardian pages' Content-Security-Policy allows
no scripts, so the engine is evaluated through the DevTools protocol, which the policy does not
govern; the page itself stays as the guardian gets it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Page

AXE_SCRIPT = (
    Path(__file__).resolve().parents[1] / "axe" / "node_modules" / "axe-core" / "axe.min.js"
)
# The WCAG 2.2 level A and AA rules (and those of the earlier versions it includes).
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
FAILING_IMPACTS = ("serious", "critical")


def axe_unavailable() -> str | None:
    """Why the accessibility tests cannot run here, or None when they can."""
    if not AXE_SCRIPT.is_file():
        return (
            f"axe-core is not installed ({AXE_SCRIPT.relative_to(AXE_SCRIPT.parents[3])} is "
            "missing): run `make axe` (needs Node.js and npm; `make test` runs it)"
        )
    return None


def axe_test_marks() -> list[pytest.MarkDecorator]:
    unavailable = axe_unavailable()
    return [pytest.mark.skipif(unavailable is not None, reason=unavailable or "")]


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    """The serious and critical violations of the WCAG A/AA rules on the page as it is now."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8") + "\n;undefined")
    results: dict[str, Any] = await page.evaluate(
        """async tags => await window.axe.run(document, {
            runOnly: {type: "tag", values: tags},
            resultTypes: ["violations"],
        })""",
        WCAG_TAGS,
    )
    return [v for v in results["violations"] if v.get("impact") in FAILING_IMPACTS]


def describe(violations: list[dict[str, Any]]) -> str:
    """Each violation with its rule, impact, help and the elements it found, for a failure."""
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:5]:
            lines.append(f"    {json.dumps(node['target'])}: {node.get('failureSummary', '')}")
    return "\n".join(lines)


async def assert_no_serious_violations(page: Page, what: str = "") -> None:
    violations = await serious_violations(page)
    assert not violations, f"{what or page.url}:\n{describe(violations)}"
