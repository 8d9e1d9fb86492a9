-- The handoff: a request opened without the guardian's address carries a short code the child's
-- screen shows; the parent types it on their own device, gives their address and confirms it
-- with a one-time code emailed there. Only keyed hashes of both codes are kept. One handoff per
-- request; a replayed request (Idempotency-Key) replaces its code, so only one code ever works.
create table consent_handoffs (
    request_id uuid primary key references consent_requests (id) on delete cascade,
    code_hash bytea not null unique,
    created_at timestamptz not null,
    expires_at timestamptz not null,
    -- when the code was entered (it works once); from then on the session below carries on
    opened_at timestamptz,
    -- the parent's browser after the code: only the hash of its link token
    session_hash bytea unique,
    -- the address the parent gave, AES-GCM like the guardian's, until it is confirmed (then it
    -- becomes the request's guardian address and is cleared here)
    email_enc bytea,
    otp_hash bytea,
    otp_expires_at timestamptz,
    otp_sends integer not null default 0 check (otp_sends >= 0),
    -- wrong one-time codes and refused forms; the fifth locks the handoff
    strikes integer not null default 0 check (strikes >= 0),
    confirmed_at timestamptz,
    check (opened_at is not null or session_hash is null)
);

-- Whatever ends a pending request (decision, expiry, cancellation, supersession, erasure) also
-- ends its handoff: the session stops working and the unconfirmed address is deleted, without
-- every statement that closes a request having to know about handoffs.
create function end_consent_handoff() returns trigger language plpgsql as $$
begin
    update consent_handoffs
    set session_hash = null, email_enc = null, otp_hash = null, otp_expires_at = null
    where request_id = new.id
      and (session_hash is not null or email_enc is not null or otp_hash is not null);
    return new;
end;
$$;

create trigger consent_requests_end_handoff
    after update of status on consent_requests
    for each row when (new.status <> 'pending')
    execute function end_consent_handoff();
