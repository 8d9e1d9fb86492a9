-- The guardian dashboard (/guardian): a parent signs in with a link emailed to their address,
-- with no account and no password, and sees every child that address consented for.

-- Sign-in links: only the token's hash; the address only as its keyed lookup hashes (every
-- form that finds its rows, as consent_requests.guardian_email_hash holds them). Single-use
-- (used_at) and short-lived (expires_at).
create table guardian_sign_in_links (
    token_hash bytea primary key check (length(token_hash) = 32),
    guardian_email_hashes bytea[] not null check (cardinality(guardian_email_hashes) > 0),
    locale text not null,
    created_at timestamptz not null,
    expires_at timestamptz not null,
    used_at timestamptz,
    check (expires_at > created_at)
);

create index guardian_sign_in_links_expiry on guardian_sign_in_links (expires_at);

-- Dashboard sessions, server-side: the cookie carries a random id, only its SHA-256 is stored.
-- Idle is checked against last_seen_at; expires_at is the absolute end.
create table guardian_sessions (
    id_hash bytea primary key check (length(id_hash) = 32),
    guardian_email_hashes bytea[] not null check (cardinality(guardian_email_hashes) > 0),
    locale text not null,
    created_at timestamptz not null,
    last_seen_at timestamptz not null,
    expires_at timestamptz not null,
    ended_at timestamptz,
    check (expires_at > created_at)
);

create index guardian_sessions_expiry on guardian_sessions (expires_at);

-- Short-lived links a signed-in guardian opens a consent's rights and address pages with (the
-- consent's own withdrawal link is stored hashed and cannot be shown again). They work like
-- the withdrawal link until expires_at, which never outlasts the session that issued them.
create table guardian_consent_links (
    token_hash bytea primary key check (length(token_hash) = 32),
    consent_id uuid not null references consents (id) on delete cascade,
    created_at timestamptz not null,
    expires_at timestamptz not null,
    check (expires_at > created_at)
);

create index guardian_consent_links_consent on guardian_consent_links (consent_id);
create index guardian_consent_links_expiry on guardian_consent_links (expires_at);
