"""Application factory: ``create_app(settings)`` wires routes, lifespan, auth and errors."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from litestar import Litestar
from litestar.config.csrf import CSRFConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from service.clock import Clock
from service.consent.runtime import Runtime
from service.db.check_cache import CHECK_TOPIC, CheckRows
from service.db.errors import DATABASE_ERRORS
from service.db.invalidation import InvalidationListener
from service.db.migrate import load_migrations
from service.db.pool import borrow, create_pool, pool_stats
from service.db.signing_keys import register_signing_key
from service.http import ops
from service.http.api_docs import OfflineSwaggerRenderPlugin
from service.http.api_key_auth import ApiKeyAuthenticator
from service.http.app_api import AppController, get_consent
from service.http.check_lane import check_lane_factory
from service.http.console import console_routes
from service.http.contract import COMPONENTS, apply_contract
from service.http.dependencies import provide_connection
from service.http.guardian import GuardianController
from service.http.guardian_dashboard import GuardianDashboardController
from service.http.guardian_handoff import HandoffController
from service.http.guardian_pages import prepare_templates
from service.http.guardian_rights import GuardianRightsController
from service.http.headers import security_headers
from service.http.json_request import JsonRequest
from service.http.media_type import document_unsupported_media_type, require_json_media_type
from service.http.metrics import metrics_middleware_factory
from service.http.privacy import retention_policy_page
from service.http.problems import exception_handlers
from service.http.settle import settle_writes_middleware_factory
from service.http.staff_api import StaffController, erase_subject
from service.http.staff_data_requests import DataRequestController
from service.http.staff_rectification import RectificationController
from service.http.staff_restrictions import RestrictionController
from service.http.wellknown import jwks
from service.metrics import Metrics
from service.security.staff_oidc import StaffOidc
from service.security.staff_tokens import verifier_from_settings
from service.settings import Settings
from service.worker import Worker

MAX_BODY_BYTES = 64 * 1024
PACKAGE_DIR = Path(__file__).parent
VERSION = "0.1.0"

logger = logging.getLogger("service.app")


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    extra_routes: Sequence[object] = (),
    embedded_worker: bool = False,
) -> Litestar:
    runtime = Runtime(settings, clock)
    metrics = Metrics(settings.metrics_multiprocess_dir)
    schema_versions = [m.version for m in load_migrations(settings.schemas_dir)]

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        pool = await create_pool(settings)
        listener = InvalidationListener(settings.database_url)
        listener.start()
        app.state.pool = pool
        app.state.listener = listener
        ttl = timedelta(seconds=settings.cache_ttl)
        app.state.authenticator = ApiKeyAuthenticator(
            pool, listener, ttl=ttl, clock=runtime.clock, stats=metrics.caches.stats("api_keys")
        )
        app.state.check_rows = CheckRows(
            pool,
            listener,
            ttl=ttl,
            clock=runtime.clock,
            size=settings.check_cache_size,
            stats=metrics.caches.stats(CHECK_TOPIC),
            pseudonym=runtime.protector.subject_pseudonym,
        )
        metrics.watch_pool(lambda: pool_stats(pool))
        try:
            async with borrow(pool) as connection:
                await register_signing_key(connection, runtime.signer, runtime.clock.now())
        except DATABASE_ERRORS as exc:
            logger.warning("could not record the signing key yet: %s", type(exc).__name__)
        stop = asyncio.Event()
        pool_sampler = asyncio.create_task(metrics.sample_pool_forever(stop), name="pool-metrics")
        worker_task = None
        worker = None
        if embedded_worker:
            worker = Worker(runtime, pool, metrics)
            worker_task = asyncio.create_task(worker.run_forever(stop), name="embedded-worker")
        try:
            yield
        finally:
            stop.set()
            await pool_sampler
            if worker_task is not None and worker is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
                await worker.close()
            await listener.stop()
            await pool.close()

    route_handlers: list[object] = [
        ops.healthz,
        ops.readyz,
        ops.metrics,
        jwks,
        AppController,
        get_consent,
        StaffController,
        erase_subject,
        RestrictionController,
        DataRequestController,
        RectificationController,
        GuardianController,
        HandoffController,
        GuardianRightsController,
        GuardianDashboardController,
        retention_policy_page,
        create_static_files_router(
            path="/static", directories=[PACKAGE_DIR / "static"], include_in_schema=False
        ),
    ]
    # The support console exists only with an identity provider to sign in with (else 404).
    if settings.staff_oidc_issuer:
        route_handlers.extend(console_routes())
    route_handlers.extend(extra_routes)

    csrf_secret = hashlib.sha256(b"consent/csrf/v1" + settings.data_key).hexdigest()
    app = Litestar(
        route_handlers=route_handlers,  # type: ignore[arg-type]
        lifespan=[lifespan],
        dependencies={"db": Provide(provide_connection)},
        exception_handlers=exception_handlers(),
        middleware=[
            metrics_middleware_factory(metrics.http),
            settle_writes_middleware_factory(lambda: getattr(app.state, "listener", None)),
            check_lane_factory(lambda: app.state),
        ],
        before_send=[security_headers(settings.public_url)],
        before_request=require_json_media_type,
        request_max_body_size=MAX_BODY_BYTES,
        request_class=JsonRequest,
        csrf_config=CSRFConfig(
            secret=csrf_secret,
            cookie_secure=settings.secure_cookies,
            cookie_httponly=True,
            cookie_samesite="strict",
            # The bearer-token API is not cookie-authenticated; only guardian forms need CSRF.
            exclude=[
                r"^/v1/",
                r"^/(healthz|readyz|metrics)\Z",
                r"^/\.well-known/",
                r"^/schema",
                r"^/dev/",
            ],
        ),
        template_config=TemplateConfig(
            directory=PACKAGE_DIR / "templates",
            engine=JinjaTemplateEngine,
            engine_callback=lambda engine: prepare_templates(
                engine.engine,
                operator_name=settings.operator_name,
                operator_email=settings.operator_email,
            ),
        ),
        openapi_config=OpenAPIConfig(
            title="Parental Consent Service",
            version=VERSION,
            description=(
                "Age gate, verifiable guardian consent by email, signed consent tokens, "
                "the check endpoint, withdrawal and revocation."
            ),
            path="/schema",
            render_plugins=[OfflineSwaggerRenderPlugin()],
            components=COMPONENTS,
        ),
        debug=False,
        # Logging is set up by `consent-service` (CONSENT_LOG_LEVEL, quiet libraries); Litestar's
        # default would replace it with its own root handler at INFO.
        logging_config=None,
    )
    document_unsupported_media_type(app)
    apply_contract(app)
    app.state.runtime = runtime
    app.state.metrics = metrics
    app.state.schema_versions = schema_versions
    app.state.staff_verifier = verifier_from_settings(settings, runtime.clock)
    app.state.staff_oidc = (
        StaffOidc(settings, runtime.protector) if settings.staff_oidc_issuer else None
    )
    return app
