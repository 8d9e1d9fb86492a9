"""The worker role: delivers the outbox and runs the lapse sweeps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg

from service.consent import retention, sweeps
from service.consent.runtime import Runtime
from service.db import idempotency_keys, rate_limits
from service.db.errors import DATABASE_ERRORS
from service.db.outbox import OutboxItem
from service.delivery import outbox
from service.delivery.smtp import MailSender, build_message
from service.delivery.webhooks import WebhookError, WebhookSender
from service.metrics import Metrics
from service.states import OutboxKind, OutboxStatus

# Small batches: a batch is sent one message after another within one claim lease.
BATCH_SIZE = 5
LEASE_SAFETY_SECONDS = outbox.CLAIM_LEASE.total_seconds() - 30
POLL_SECONDS = 1.0
SWEEP_EVERY_SECONDS = 30.0

logger = logging.getLogger("service.worker")


class Worker:
    def __init__(
        self, runtime: Runtime, pool: asyncpg.Pool, metrics: Metrics | None = None
    ) -> None:
        self.runtime = runtime
        self.pool = pool
        self.metrics = (metrics or Metrics()).worker
        settings = runtime.settings
        self.mail = MailSender(settings.smtp, settings.mail_from)
        self.webhooks = (
            WebhookSender(settings.webhook_url, settings.webhook_secret)
            if settings.webhook_url and settings.webhook_secret
            else None
        )

    async def close(self) -> None:
        await self.mail.close()
        if self.webhooks is not None:
            await self.webhooks.close()

    async def deliver_due(self) -> int:
        """Deliver every message that is due now; return how many were delivered."""
        delivered = 0
        while True:
            async with self.pool.acquire() as connection:
                items = await outbox.claim_due(
                    connection, now=self.runtime.clock.now(), limit=BATCH_SIZE
                )
            if not items:
                return delivered
            claimed_at = time.monotonic()
            for item in items:
                if time.monotonic() - claimed_at > LEASE_SAFETY_SECONDS:
                    # Our lease is running out: leave the rest to be claimed again rather
                    # than race another worker that may already have them.
                    return delivered
                delivered += await self._deliver(item)

    async def _deliver(self, item: OutboxItem) -> int:
        try:
            await self._send(item)
        except Exception as exc:
            # Webhook errors describe the receiver; others may quote an address: name the type.
            error = str(exc) if isinstance(exc, WebhookError) else type(exc).__name__
            async with self.pool.acquire() as connection:
                state = await outbox.mark_failed(
                    connection,
                    item,
                    error=error,
                    now=self.runtime.clock.now(),
                    max_attempts=self.runtime.settings.outbox_max_attempts,
                )
            if state is not None:  # None: another worker owns the message now
                self.metrics.delivery_failed(item.kind)
            log = logger.error if state is OutboxStatus.DEAD else logger.warning
            log(
                "outbox %s %s attempt %d failed (%s): %s",
                item.kind,
                item.id,
                item.attempts,
                state or "claimed by another worker",
                error,
            )
            await self.mail.close()
            return 0
        async with self.pool.acquire() as connection:
            await outbox.mark_sent(connection, item, self.runtime.clock.now())
        self.metrics.delivered(item.kind)
        return 1

    async def _send(self, item: OutboxItem) -> None:
        if item.kind is OutboxKind.EMAIL:
            payload = outbox.decrypt_email(self.runtime.protector, item)
            message = build_message(
                mail_from=self.mail.mail_from,
                to=payload.to,
                email=payload.email,
                locale=payload.locale,
            )
            await self.mail.send(message)
        elif item.kind is OutboxKind.WEBHOOK:
            if self.webhooks is None:
                raise WebhookError("no webhook receiver is configured (CONSENT_WEBHOOK_URL)")
            assert item.payload is not None
            await self.webhooks.send(str(item.id), item.payload)

    async def sweep(self) -> dict[str, int]:
        async with self.pool.acquire() as connection:
            expired_requests = await sweeps.expire_overdue_requests(connection, self.runtime)
            lapsed = await sweeps.expire_lapsed_consents(connection, self.runtime)
            purged_requests = await retention.purge_requests(connection, self.runtime)
            purged_consents = await retention.purge_consents(connection, self.runtime)
            await retention.purge_outbox(connection, self.runtime)
            await rate_limits.purge_old_windows(
                connection, self.runtime.clock.now() - retention.RATE_WINDOW_RETENTION
            )
            await idempotency_keys.delete_older_than(
                connection, self.runtime.clock.now() - retention.IDEMPOTENCY_RETENTION
            )
        return {
            "expired_requests": expired_requests,
            "lapsed_consents": lapsed,
            "purged_requests": purged_requests,
            "purged_consents": purged_consents,
        }

    async def run_forever(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        last_sweep = 0.0
        while not stop.is_set():
            try:
                if loop.time() - last_sweep >= SWEEP_EVERY_SECONDS:
                    self.metrics.swept_records(await self.sweep())
                    last_sweep = loop.time()
                await self.deliver_due()
            except DATABASE_ERRORS as exc:
                logger.warning("worker pass failed, retrying: %s", type(exc).__name__)
            except Exception:
                logger.exception("unexpected error in a worker pass; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=POLL_SECONDS)
