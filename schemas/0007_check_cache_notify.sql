-- Every replica caches each subject's check answer (service.db.check_cache). Any change to a row
-- the check reads tells every replica which subject to forget, on the channel of
-- service.db.invalidation, delivered when (and only if) the transaction commits. A trigger, not
-- the application, publishes it, so no write path can forget to: a new transaction, a sweep,
-- an erasure and an UPDATE typed into psql all notify alike. Identical notices within one
-- transaction are delivered once.
create function consent_check_changed() returns trigger
language plpgsql as $$
begin
    if tg_op = 'TRUNCATE' then
        perform pg_notify('consent_cache', 'consent_check');
        return null;
    end if;
    if tg_op in ('UPDATE', 'DELETE') then
        perform pg_notify('consent_cache', 'consent_check:' || old.subject_id);
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        perform pg_notify('consent_cache', 'consent_check:' || new.subject_id);
    end if;
    return null;
end;
$$;

create trigger consents_check_changed
    after insert or update or delete on consents
    for each row execute function consent_check_changed();
create trigger consents_check_truncated
    after truncate on consents
    for each statement execute function consent_check_changed();

create trigger consent_requests_check_changed
    after insert or update or delete on consent_requests
    for each row execute function consent_check_changed();
create trigger consent_requests_check_truncated
    after truncate on consent_requests
    for each statement execute function consent_check_changed();
