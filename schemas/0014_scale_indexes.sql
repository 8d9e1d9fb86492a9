-- The worker's retention sweeps find what is due through these partial indexes instead of
-- reading every row: they hold only ended rows not yet purged (and undelivered messages that
-- still carry a payload), a set bounded by the retention periods, not by the years of
-- history in the tables. `make bench-scale` prints the plans that use them.
create index consent_requests_closed_unpurged on consent_requests (decided_at)
    where purged_at is null and status in ('denied', 'expired', 'cancelled');

create index consents_ended_unpurged on consents (ended_at)
    where purged_at is null and status in ('withdrawn', 'revoked', 'superseded', 'expired');

create index outbox_undelivered_payloads on outbox (created_at)
    where status in ('dead', 'cancelled') and (payload is not null or payload_enc is not null);
