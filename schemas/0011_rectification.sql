-- Rectification (GDPR Art. 16).
--
-- A consent may end because a corrected birth date shows the child needs no guardian's consent
-- at all: status 'not_required'.
alter table consents drop constraint consents_status_check;
alter table consents add constraint consents_status_check check (
    status in ('granted', 'revoked', 'withdrawn', 'expired', 'superseded', 'not_required')
);

-- A guardian's new address, waiting until a link sent to it is confirmed; only then does the
-- consent's request take it. Personal data: new_email_enc (AES-GCM, bound to the row's id),
-- blanked once the change is confirmed or its link has expired, and deleted with the subject.
-- Only the SHA-256 of the 256-bit confirmation token is stored; the link works once.
-- The check never reads this table, so it needs no cache-invalidation trigger.
create table guardian_address_changes (
    id uuid primary key,
    consent_id uuid not null references consents (id),
    subject_id text not null check (length(subject_id) between 1 and 128),
    data_request_id uuid references data_requests (id),
    new_email_enc bytea,
    confirm_token_hash bytea unique,
    requested_by text not null check (length(requested_by) between 1 and 300),
    created_at timestamptz not null,
    expires_at timestamptz not null check (expires_at > created_at),
    confirmed_at timestamptz,
    check (confirmed_at is null or new_email_enc is null)
);

create index guardian_address_changes_consent on guardian_address_changes (consent_id);
create index guardian_address_changes_subject on guardian_address_changes (subject_id);
create index guardian_address_changes_waiting
    on guardian_address_changes (expires_at) where new_email_enc is not null;
