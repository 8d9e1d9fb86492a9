-- Erasure on withdrawal (CONSENT_WITHDRAWAL_ERASES) and nothing kept past retention.
--
-- A message queued by an erasure (the guardian's withdrawal confirmation, the app's
-- subject.erasure_requested or subject.erased webhook, anything still queued for an erased or
-- purged record) loses its payload and its subject id as soon as it is finished: sent, dead or
-- cancelled. What stays is what the outbox's metrics and audit need: kind, topic, status,
-- attempts, times.
alter table outbox add column scrub_when_done boolean not null default false;

-- When a withdrawal erased the personal data of its consent (address, lookup hash, link and
-- withdrawal tokens, consent token, birth date); null while they are kept.
alter table consents add column erased_at timestamptz;
alter table consents
    add constraint consents_erased_only_when_ended check (erased_at is null or status <> 'granted');
