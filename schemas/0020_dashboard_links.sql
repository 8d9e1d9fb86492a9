-- The guardian dashboard authorizes by the exact address its sign-in link went to, and a
-- dashboard's consent link lives only as long as the session that issued it.

-- The keyed reference (guardian_reference) of the exact address the sign-in link was sent to:
-- the lookup hashes strip a +tag and so only find candidates; a consent is the session's only
-- when its own guardian_ref is this one. Rows from before have none and authorize nothing.
alter table guardian_sign_in_links add column guardian_ref text;
alter table guardian_sessions add column guardian_ref text;

-- The session's idle end, moved on with last_seen_at, so a consent link can be checked
-- against it in SQL. Null (a session from before): its links are refused.
alter table guardian_sessions add column idle_until timestamptz;

-- The session that issued the link: it works only while that session is live, and goes with
-- it. Links from before have none and are refused.
alter table guardian_consent_links
    add column session_id_hash bytea references guardian_sessions (id_hash) on delete cascade;

create index guardian_consent_links_session on guardian_consent_links (session_id_hash);
