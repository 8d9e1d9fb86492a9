-- The whole data model of the consent service.
-- Personal data: only guardian_email_enc (AES-GCM), guardian_email_hash (keyed hash),
-- birth_date (kept until the decision), encrypted outbox payloads. No child name anywhere.

create table api_keys (
    id uuid primary key,
    name text not null check (length(name) between 1 and 100),
    key_prefix text not null,
    key_hash bytea not null unique,
    scopes text[] not null check (
        cardinality(scopes) > 0
        and scopes <@ array['consent:request', 'consent:check']::text[]
    ),
    created_at timestamptz not null,
    revoked_at timestamptz
);

create table signing_keys (
    kid text primary key,
    public_jwk jsonb not null,
    first_used_at timestamptz not null,
    last_used_at timestamptz not null
);

create table consent_requests (
    id uuid primary key,
    subject_id text not null check (length(subject_id) between 1 and 128),
    status text not null check (status in ('pending', 'granted', 'denied', 'expired', 'cancelled')),
    country text not null check (country ~ '^[A-Z]{2}$'),
    age_of_consent smallint not null check (age_of_consent between 13 and 21),
    basis text not null,
    birth_date date,
    consent_required_until date not null,
    guardian_email_enc bytea,
    guardian_email_hash bytea,
    guardian_ref text not null,
    purposes text[] not null check (cardinality(purposes) > 0),
    locale text not null check (locale in ('en', 'sl')),
    policy_version text not null,
    link_token_hash bytea unique,
    failed_submissions integer not null default 0 check (failed_submissions >= 0),
    api_key_id uuid references api_keys (id),
    created_at timestamptz not null,
    expires_at timestamptz not null,
    decided_at timestamptz,
    updated_at timestamptz not null,
    purged_at timestamptz,
    check ((status = 'pending') = (decided_at is null)),
    -- the birth date is needed only until the decision (design: data rules)
    check (status = 'pending' or birth_date is null),
    check (status <> 'pending' or link_token_hash is not null)
);

-- at most one pending request per subject: a new request supersedes (cancels) the old one
create unique index consent_requests_one_pending_per_subject
    on consent_requests (subject_id) where status = 'pending';
create index consent_requests_subject on consent_requests (subject_id, created_at desc);
create index consent_requests_guardian_recent
    on consent_requests (guardian_email_hash, created_at) where guardian_email_hash is not null;
create index consent_requests_pending_expiry
    on consent_requests (expires_at) where status = 'pending';

create table consents (
    id uuid primary key,
    -- one consent per request: a double-submitted grant cannot create two
    request_id uuid not null unique references consent_requests (id),
    subject_id text not null check (length(subject_id) between 1 and 128),
    status text not null check (status in ('granted', 'revoked', 'withdrawn', 'expired', 'superseded')),
    purposes text[] not null check (cardinality(purposes) > 0),
    jurisdiction text not null,
    method text not null check (method in ('email_plus')),
    policy_version text not null,
    guardian_ref text not null,
    granted_at timestamptz not null,
    expires_at timestamptz not null check (expires_at > granted_at),
    ended_at timestamptz,
    end_reason text,
    token text,
    withdraw_token_hash bytea unique,
    updated_at timestamptz not null,
    purged_at timestamptz,
    check ((status = 'granted') = (ended_at is null))
);

-- at most one live consent per subject
create unique index consents_one_live_per_subject on consents (subject_id) where status = 'granted';
create index consents_subject on consents (subject_id, granted_at desc);
create index consents_live_expiry on consents (expires_at) where status = 'granted';

create table audit_events (
    id bigint generated always as identity primary key,
    subject_id text,
    request_id uuid,
    consent_id uuid,
    actor text not null,
    action text not null,
    from_status text,
    to_status text,
    reason text,
    details jsonb not null default '{}'::jsonb,
    occurred_at timestamptz not null,
    redacted boolean not null default false,
    personal_salt bytea,
    personal_digest bytea not null,
    content_hash bytea not null,
    prev_hash bytea not null,
    chain_hash bytea not null unique
);

create index audit_events_subject on audit_events (subject_id, id);

-- Audit events are append-only. The one exception is erasure, which may blank the personal
-- fields of an event (keeping its hashes, so the chain still verifies) when the transaction
-- says so explicitly with: set local consent.redaction = 'on'. Blank means blank: nothing
-- can be rewritten that way.
create function audit_events_append_only() returns trigger
language plpgsql as $$
begin
    if tg_op = 'UPDATE'
       and coalesce(current_setting('consent.redaction', true), '') = 'on'
       and new.subject_id is null
       and new.reason is null
       and new.details = '{}'::jsonb
       and new.personal_salt is null
       and new.id = old.id
       and new.actor = old.actor
       and new.action = old.action
       and new.occurred_at = old.occurred_at
       and new.request_id is not distinct from old.request_id
       and new.consent_id is not distinct from old.consent_id
       and new.from_status is not distinct from old.from_status
       and new.to_status is not distinct from old.to_status
       and new.personal_digest = old.personal_digest
       and new.content_hash = old.content_hash
       and new.prev_hash = old.prev_hash
       and new.chain_hash = old.chain_hash
       and new.redacted
    then
        return new;
    end if;
    raise exception 'audit_events is append-only (% refused)', tg_op
        using errcode = 'insufficient_privilege';
end;
$$;

create trigger audit_events_append_only
    before update or delete on audit_events
    for each row execute function audit_events_append_only();

create trigger audit_events_no_truncate
    before truncate on audit_events
    for each statement execute function audit_events_append_only();

create table outbox (
    id uuid primary key,
    kind text not null check (kind in ('email', 'webhook')),
    topic text not null,
    subject_id text,
    related_id uuid,
    payload jsonb,
    payload_enc bytea,
    status text not null default 'pending' check (status in ('pending', 'sent', 'dead', 'cancelled')),
    attempts integer not null default 0 check (attempts >= 0),
    claim_id uuid,
    next_attempt_at timestamptz not null,
    last_error text,
    created_at timestamptz not null,
    sent_at timestamptz,
    check ((payload is null) <> (payload_enc is null) or status <> 'pending')
);

create index outbox_related on outbox (related_id) where related_id is not null;
create index outbox_due on outbox (next_attempt_at) where status = 'pending';
create index outbox_subject on outbox (subject_id);

create table idempotency_keys (
    api_key_id uuid not null references api_keys (id),
    key text not null check (length(key) between 1 and 255),
    request_hash bytea not null,
    status_code integer not null,
    response jsonb not null,
    subject_id text,
    created_at timestamptz not null,
    primary key (api_key_id, key)
);

create index idempotency_keys_created on idempotency_keys (created_at);

create table rate_limit_counters (
    bucket text not null,
    window_start timestamptz not null,
    count integer not null check (count >= 0),
    primary key (bucket, window_start)
);

create index rate_limit_counters_window on rate_limit_counters (window_start);
