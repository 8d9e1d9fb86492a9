-- A guardian may withdraw some purposes of a consent and keep the rest: the consent keeps its
-- id, its `purposes` shrink to what remains, and this column keeps what was withdrawn when,
-- oldest first: [{"purpose": "newsletter", "withdrawn_at": "2026-11-23T10:00:00+00:00"}].
alter table consents
    add column withdrawn_purposes jsonb not null default '[]'::jsonb
        check (jsonb_typeof(withdrawn_purposes) = 'array');

-- The withdrawal link's strikes: submissions refused by the CSRF check. Five lock the link until
-- `withdraw_locked_until`; the count starts again after that.
alter table consents
    add column withdraw_failed_submissions integer not null default 0
        check (withdraw_failed_submissions >= 0),
    add column withdraw_locked_until timestamptz;
