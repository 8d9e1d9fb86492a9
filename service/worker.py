"""The worker role: delivers the outbox and runs the lapse sweeps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import EmailMessage

import asyncpg

from service.consent import rectification, reminders, retention, staff_sessions, sweeps
from service.consent.runtime import Runtime
from service.db import outbox as outbox_table
from service.db.errors import DATABASE_ERRORS
from service.db.outbox import OutboxItem
from service.db.pool import borrow
from service.delivery import outbox
from service.delivery.smtp import MailSender, SmtpTlsUnavailable, build_message
from service.delivery.webhooks import WebhookError, WebhookSender
from service.metrics import Metrics
from service.states import OutboxKind, OutboxStatus

# A batch is sent one message after another while its claims are renewed; one round trip
# claims it and records the previous batch sent.
BATCH_SIZE = 10
# Claims are renewed this many times per lease, so one late or failed renewal loses nothing.
RENEWALS_PER_LEASE = 3
POLL_SECONDS = 1.0
SWEEP_EVERY_SECONDS = 30.0

logger = logging.getLogger("service.worker")


class _Claim:
    """The messages of one claimed batch that are still ours, and until when (monotonic time)
    that is certain: the lease as of the last renewal that succeeded."""

    def __init__(self, items: list[OutboxItem], lease: timedelta) -> None:
        self.held = {item.id: item for item in items}
        self.lease_seconds = lease.total_seconds()
        self.certain_until = time.monotonic() + self.lease_seconds

    def holds(self, item: OutboxItem) -> bool:
        return item.id in self.held and time.monotonic() < self.certain_until

    def release(self, item: OutboxItem) -> None:
        self.held.pop(item.id, None)

    def renewed(self, started: float, ours: set[uuid.UUID]) -> None:
        """A renewal that began at ``started`` extended the claims on ``ours``; any other
        message was finished or taken over by another worker."""
        self.held = {item_id: item for item_id, item in self.held.items() if item_id in ours}
        self.certain_until = started + self.lease_seconds


class Worker:
    def __init__(
        self, runtime: Runtime, pool: asyncpg.Pool, metrics: Metrics | None = None
    ) -> None:
        self.runtime = runtime
        self.pool = pool
        self.metrics = (metrics or Metrics()).worker
        settings = runtime.settings
        self.lease = timedelta(seconds=settings.outbox_lease)
        # One SMTP connection per lane; a lane claims and sends its own batches.
        self.senders = [
            MailSender(settings.smtp, settings.mail_from, settings.mail_reply_to)
            for _ in range(settings.outbox_concurrency)
        ]
        self.webhooks = (
            WebhookSender(settings.webhook_url, settings.webhook_secret)
            if settings.webhook_url and settings.webhook_secret
            else None
        )

    async def close(self) -> None:
        for sender in self.senders:
            await sender.close()
        if self.webhooks is not None:
            await self.webhooks.close()

    async def deliver_due(self) -> int:
        """Deliver every message that is due now; return how many were delivered.

        Each lane (``CONSENT_OUTBOX_CONCURRENCY``) claims batches and sends them on an SMTP
        connection of its own until none is due; ``FOR UPDATE SKIP LOCKED`` keeps the lanes'
        batches apart as it does other workers'. A lane that fails leaves the others to finish
        their batches before the failure is raised."""
        outcomes = await asyncio.gather(
            *(self._drain(sender) for sender in self.senders), return_exceptions=True
        )
        delivered = 0
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            delivered += outcome
        return delivered

    async def _drain(self, sender: MailSender) -> int:
        """One lane: claim batches and send them on ``sender`` until none is due.

        A batch's messages are recorded as sent by the statement that claims the next batch
        (one round trip per batch). Until then they stay in the claim, whose lease is renewed,
        so no other worker takes them; a worker that dies in between sends them again once
        the lease runs out, as it would one it died sending: delivery stays at least once,
        and the Message-ID lets the receiver recognise the copy."""
        delivered = 0
        sent: list[OutboxItem] = []
        while True:
            async with borrow(self.pool) as connection:
                items = await outbox_table.claim_due(
                    connection,
                    now=self.runtime.clock.now(),
                    limit=BATCH_SIZE,
                    lease=self.lease,
                    sent=sent,
                )
            for item in sent:
                self.metrics.delivered(item.kind)
            delivered += len(sent)
            sent = []
            if not items:
                return delivered
            async with self._renewing(items) as claim:
                upcoming = self._prepare_soon(items[0])
                for index, item in enumerate(items):
                    # The next email is built while this one waits on the SMTP server.
                    prepared = upcoming
                    if index + 1 < len(items):
                        upcoming = self._prepare_soon(items[index + 1])
                    if not claim.holds(item):
                        # The lease could not be renewed, or another worker has the message
                        # now: leave it to whoever claims it next rather than race them.
                        prepared.cancel()
                        claim.release(item)
                        continue
                    if await self._deliver(sender, item, prepared):
                        sent.append(item)
                    else:
                        claim.release(item)

    @contextlib.asynccontextmanager
    async def _renewing(self, items: list[OutboxItem]) -> AsyncIterator[_Claim]:
        """Keep the claims on ``items`` renewed while the block delivers them: a slow send
        keeps its message, and a worker that dies loses it within one short lease."""
        claim = _Claim(items, self.lease)
        renewer = asyncio.create_task(self._keep_renewed(claim))
        try:
            yield claim
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _keep_renewed(self, claim: _Claim) -> None:
        while True:
            await asyncio.sleep(claim.lease_seconds / RENEWALS_PER_LEASE)
            if not claim.held:
                continue
            started = time.monotonic()
            try:
                async with borrow(self.pool) as connection:
                    ours = await outbox.renew_claims(
                        connection,
                        list(claim.held.values()),
                        now=self.runtime.clock.now(),
                        lease=self.lease,
                    )
            except DATABASE_ERRORS as exc:
                logger.warning("renewing outbox claims failed, retrying: %s", type(exc).__name__)
                continue
            except Exception:
                logger.exception("unexpected error renewing outbox claims; retrying")
                continue
            claim.renewed(started, ours)

    def _prepare_soon(self, item: OutboxItem) -> asyncio.Future[EmailMessage | None]:
        """The message ``item`` sends, built in a task of its own (an email; None for a
        webhook), whose failure counts as a failed attempt of that message when awaited."""

        async def prepare() -> EmailMessage | None:
            return self._prepare(item)

        task = asyncio.ensure_future(prepare())
        # A task cancelled or never awaited must not be reported as an unread exception.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        return task

    def _prepare(self, item: OutboxItem) -> EmailMessage | None:
        if item.kind is not OutboxKind.EMAIL:
            return None
        payload = outbox.decrypt_email(self.runtime.protector, item)
        return build_message(
            item_id=item.id,
            mail_from=self.runtime.settings.mail_from,
            reply_to=self.runtime.settings.mail_reply_to,
            to=payload.to,
            email=payload.email,
            locale=payload.locale,
        )

    async def _deliver(
        self, sender: MailSender, item: OutboxItem, prepared: asyncio.Future[EmailMessage | None]
    ) -> bool:
        """Send ``item``; whether it went (a failure is recorded here, a success by the caller)."""
        try:
            await self._send(sender, item, await prepared)
        except Exception as exc:
            # These errors describe the receiver; others may quote an address: name the type.
            described = isinstance(exc, (WebhookError, SmtpTlsUnavailable))
            error = str(exc) if described else type(exc).__name__
            async with borrow(self.pool) as connection:
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
            await sender.close()
            return False
        return True

    async def _send(
        self, sender: MailSender, item: OutboxItem, message: EmailMessage | None
    ) -> None:
        if item.kind is OutboxKind.EMAIL:
            assert message is not None
            await sender.send(message)
        elif item.kind is OutboxKind.WEBHOOK:
            if self.webhooks is None:
                raise WebhookError("no webhook receiver is configured (CONSENT_WEBHOOK_URL)")
            assert item.payload is not None
            await self.webhooks.send(str(item.id), item.payload)

    async def sweep(self) -> dict[str, int]:
        async with borrow(self.pool) as connection:
            expired_requests = await sweeps.expire_overdue_requests(connection, self.runtime)
            lapsed = await sweeps.expire_lapsed_consents(connection, self.runtime)
            handoffs = await sweeps.end_finished_handoffs(connection, self.runtime)
            lapsing = await sweeps.notify_lapsing_consents(connection, self.runtime)
            reminded = await reminders.send_due_reminders(connection, self.runtime)
            purged_requests = await retention.purge_requests(connection, self.runtime)
            purged_consents = await retention.purge_consents(connection, self.runtime)
            await rectification.forget_expired_address_changes(connection, self.runtime)
            await retention.purge_outbox(connection, self.runtime)
            await retention.purge_rate_limit_windows(connection, self.runtime)
            await retention.purge_idempotency_records(connection, self.runtime)
            console_sessions = await staff_sessions.sweep_sessions(connection, self.runtime)
        return {
            "expired_requests": expired_requests,
            "lapsed_consents": lapsed,
            "lapsing_notices": lapsing,
            "reminders": reminded,
            "purged_requests": purged_requests,
            "purged_consents": purged_consents,
            "console_sessions": console_sessions,
            "handoff_sessions": handoffs,
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
