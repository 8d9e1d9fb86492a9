-- Support console sessions: server-side, one row per signed-in browser. The cookie carries a
-- random id; only its SHA-256 is stored, so a copy of this table signs nobody in.
create table console_sessions (
    id_hash bytea primary key check (length(id_hash) = 32),
    staff_sub text not null check (length(staff_sub) between 1 and 255),
    staff_name text check (length(staff_name) <= 255),
    roles text[] not null,
    created_at timestamptz not null,
    last_seen_at timestamptz not null,
    -- the absolute end (created_at + CONSENT_CONSOLE_SESSION_LIFETIME); idle is checked
    -- against last_seen_at with the timeout in force
    expires_at timestamptz not null,
    ended_at timestamptz,
    check (expires_at > created_at)
);

create index console_sessions_expiry on console_sessions (expires_at);
