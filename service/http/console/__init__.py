"""The support console: staff sign in with the operator's identity provider (OpenID Connect)
and handle a family's case in server-rendered pages under ``/console``.

Every route but sign-in's carries ``opt["roles"]`` and the console guard: a route without
roles is refused to everybody (fail closed), so a new page must say who may open it.
"""

from service.http.console.actions import ConsoleActionsController
from service.http.console.admin import ConsoleAdminController
from service.http.console.auth import ConsoleAuthController
from service.http.console.pages import ConsoleController
from service.http.console.rights import ConsoleRightsController

__all__ = ["ConsoleAuthController", "ConsoleController", "console_routes"]


def console_routes() -> list[object]:
    return [
        ConsoleAuthController,
        ConsoleController,
        ConsoleAdminController,
        ConsoleActionsController,
        ConsoleRightsController,
    ]
