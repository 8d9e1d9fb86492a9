"""``/schema``: Swagger UI served from the installed ``swagger-ui-py`` package (Swagger UI 5.x,
Apache-2.0; its LICENSE is served beside it), so the docs work with no network and the page
names no other host (its Content-Security-Policy allows only this origin)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from litestar import Request, Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import FromPath

DOCS_PATH = "/schema"
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "LICENSE": "text/plain; charset=utf-8",
}
# Only this origin: the scripts and styles are files (no inline code), the spec is fetched,
# and "Try it out" calls this same service. Swagger UI's own icons are data: URIs.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

# No validator badge (it would call validator.swagger.io); the spec comes from this service.
_INIT_SCRIPT = f"""window.addEventListener("DOMContentLoaded", function () {{
  window.ui = SwaggerUIBundle({{
    url: "{DOCS_PATH}/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  }});
}});
"""


def swagger_ui_directory() -> Path:
    """Where the installed swagger-ui-py keeps Swagger UI's dist files (found without importing
    the package: its ``__init__`` loads framework adapters this service does not use)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


class OfflineSwaggerRenderPlugin(OpenAPIRenderPlugin):
    def __init__(self) -> None:
        super().__init__(path="/swagger", favicon="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = str(openapi_schema["info"]["title"])
        assets = f"{DOCS_PATH}/assets"
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/init.js"></script>
</head><body><div id="swagger-ui"></div></body></html>
""".encode()

    def receive_router(self, router: Router) -> None:
        router.register(swagger_assets)


@get("/assets/{name:str}", include_in_schema=False, sync_to_thread=False)
def swagger_assets(name: FromPath[str]) -> Response[bytes]:
    if name == "init.js":
        return Response(_INIT_SCRIPT.encode(), media_type="text/javascript; charset=utf-8")
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFoundException()
    content = (swagger_ui_directory() / name).read_bytes()
    # The files change only with the package's version: let browsers keep them a day.
    return Response(
        content, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
    )
