-- What the child said about themselves (e.g. the username they chose), shown to the guardian so
-- they know which account a request is about: personal data, AES-GCM like the guardian's
-- address, and deleted wherever and whenever the address is.
alter table consent_requests add column child_hint_enc bytea;

-- When the latest reminder to the undecided guardian was queued (by the sweep, or a resend by
-- staff): the sweep reminds only requests without one, so a guardian gets its reminder once
-- however many workers sweep.
alter table consent_requests add column reminded_at timestamptz;
-- The link in the latest reminder: only its hash, like the first link's. Both open the same
-- request until it is decided; a later reminder replaces the earlier reminder's link.
alter table consent_requests add column reminder_link_token_hash bytea unique;

-- the sweep's work list: pending requests not reminded yet, by expiry
create index consent_requests_unreminded
    on consent_requests (expires_at) where status = 'pending' and reminded_at is null;
-- the per-address limit on reminders
create index consent_requests_guardian_reminded
    on consent_requests (guardian_email_hash, reminded_at)
    where guardian_email_hash is not null and reminded_at is not null;
