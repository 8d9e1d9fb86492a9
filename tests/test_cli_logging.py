"""The logging setup of ``consent-service``: at INFO, httpx would log every request's full URL,
so a webhook URL's credentials and query token would reach the log; it is quieted to WARNING.
The app built afterwards keeps that setup (and CONSENT_LOG_LEVEL) instead of replacing it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from service.app import create_app
from service.cli import configure_logging
from service.delivery.webhooks import WebhookSender
from service.settings import LoggingConfig, Settings
from tests.support.webhooks import WEBHOOK_SECRET, webhook_receiver

URL_SECRET = "s3cr3t-in-the-url"


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Put back what ``configure_logging`` changes, so other tests see the logging they had."""
    root = logging.getLogger()
    names = ("mail.log", "httpx", "httpcore")
    levels = {name: logging.getLogger(name).level for name in names}
    root_level, root_handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        root.setLevel(root_level)
        root.handlers[:] = root_handlers


@pytest.mark.usefixtures("restored_logging")
async def test_a_webhook_url_with_secrets_leaves_no_trace_in_the_log_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure_logging(LoggingConfig(level="info"))
    caplog.set_level(logging.INFO)
    logging.getLogger("service.test").info("the log is captured at INFO")
    async with webhook_receiver() as receiver:
        url = (
            f"http://hooks:{URL_SECRET}@127.0.0.1:{receiver.port}/hooks/consent?token={URL_SECRET}"
        )
        sender = WebhookSender(url, WEBHOOK_SECRET)
        try:
            await sender.send("msg_logging", {"type": "test"})
        finally:
            await sender.close()
        assert len(receiver.deliveries) == 1

    assert "the log is captured at INFO" in caplog.text
    assert URL_SECRET not in caplog.text
    assert not [record for record in caplog.records if record.name.startswith("http")]


@pytest.mark.usefixtures("restored_logging")
def test_building_the_app_keeps_the_configured_logging(settings: Settings) -> None:
    root = logging.getLogger()
    configure_logging(LoggingConfig(level="warning"))
    root.setLevel(logging.WARNING)  # as on a fresh process (here pytest's handlers came first)
    handlers = list(root.handlers)

    create_app(settings)

    assert root.level == logging.WARNING
    assert root.handlers == handlers
    assert logging.getLogger("httpx").level == logging.WARNING
