-- A request opened with the guardian's address keeps it when the handoff is used: the parent
-- proves control of that address with a one-time code emailed there and reaches the review
-- page with a link of its own, so the emailed link keeps working too.
alter table consent_requests add column handoff_link_token_hash bytea unique;

-- When the parent proved the address on file (as opposed to confirmed_at: an address they gave).
alter table consent_handoffs add column proved_at timestamptz;

-- The worker clears a handoff's session, one-time code and unconfirmed address once the
-- session's time is over; this finds the few that still hold any.
create index consent_handoffs_holding on consent_handoffs (opened_at)
    where session_hash is not null or email_enc is not null or otp_hash is not null;
