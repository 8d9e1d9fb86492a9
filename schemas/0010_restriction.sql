-- Restriction of processing (GDPR Art. 18): while a subject has a row here, the check answers
-- "restricted" (never allowed) for every purpose; the data stays. Lifting deletes the row (the
-- audit trail keeps when, by whom and why); erasing the subject deletes it too.
-- Personal data: subject_id, and the staff member's reason.
create table subject_restrictions (
    subject_id text primary key check (length(subject_id) between 1 and 128),
    reason text not null check (length(reason) between 3 and 1000),
    restricted_by text not null check (length(restricted_by) between 1 and 255),
    restricted_at timestamptz not null
);

-- The check reads this table: every replica must forget the subject's cached answer on commit
-- (the function of 0007_check_cache_notify.sql).
create trigger subject_restrictions_check_changed
    after insert or update or delete on subject_restrictions
    for each row execute function consent_check_changed();
create trigger subject_restrictions_check_truncated
    after truncate on subject_restrictions
    for each statement execute function consent_check_changed();

-- The main app may erase a child whose account it deleted (DELETE /v1/subjects/{id}).
alter table api_keys drop constraint api_keys_scopes_check;
alter table api_keys add constraint api_keys_scopes_check check (
    cardinality(scopes) > 0
    and scopes <@ array['consent:request', 'consent:check', 'subject:erase']::text[]
);

-- A request the main app cancelled (POST /v1/consent-requests/{id}/cancel), as opposed to one
-- a newer request for the same subject replaced: the guardian's link says which.
alter table consent_requests add column cancelled_by_app boolean not null default false;
alter table consent_requests add constraint consent_requests_cancelled_by_app_check
    check (not cancelled_by_app or status = 'cancelled');
