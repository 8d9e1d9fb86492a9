-- The consents' retention purge looks for every ended status, 'not_required' included (0011
-- added it after 0014's index was made without it), so the planner could not use that index:
-- it read the whole consents table, sorted it by ended_at and hash-joined every request to it.
-- With a predicate the purge's query implies, the index hands its rows over in ended_at order
-- and the purge stops after its batch, joining each one to its request by primary key.
drop index consents_ended_unpurged;
create index consents_ended_unpurged on consents (ended_at)
    where purged_at is null
      and status in ('withdrawn', 'revoked', 'superseded', 'not_required', 'expired');

-- Ended and not yet purged go together (retention purges what ended long ago), which
-- per-column statistics cannot show: without these the planner takes every ended row of the
-- history for a candidate and plans the purge for millions of rows.
create statistics consents_status_purged (mcv) on status, purged_at from consents;
analyze consents;
