-- How each granted purpose was verified, so a purpose that needs a stronger method than email
-- plus (COPPA: disclosure to third parties) can be told apart when stronger methods arrive.
-- `method` stays: the method of the consent as a whole, as the token's `method` claim says.
create function consent_purpose_methods_valid(purposes text[], methods jsonb)
returns boolean
language sql immutable
as $$
    select jsonb_typeof(methods) = 'object'
       and methods ?& purposes
       and not exists (
           select 1 from jsonb_each(methods) as m
           where m.value not in ('"email_plus"'::jsonb)
       )
$$;

alter table consents add column purpose_methods jsonb;

update consents
set purpose_methods = (select jsonb_object_agg(p, method) from unnest(purposes) as p);

-- A writer that names no per-purpose methods verified every purpose by `method`: what the
-- column meant before this migration.
create function consents_default_purpose_methods() returns trigger
language plpgsql as $$
begin
    if new.purpose_methods is null then
        new.purpose_methods := (
            select jsonb_object_agg(p, new.method) from unnest(new.purposes) as p
        );
    end if;
    return new;
end;
$$;

create trigger consents_default_purpose_methods
    before insert on consents
    for each row execute function consents_default_purpose_methods();

alter table consents alter column purpose_methods set not null;
alter table consents
    add constraint consents_purpose_methods_valid
    check (consent_purpose_methods_valid(purposes, purpose_methods));

-- Joint consent (France, Loi Informatique et Libertés Art. 45): the child under 15 consents
-- together with a parent. The app attests that the child agreed; null where it said nothing.
alter table consent_requests add column joint_consent boolean not null default false;
alter table consent_requests add column child_agreed boolean;
alter table consent_requests
    add constraint consent_requests_joint_consent_child_agreed
    check (not joint_consent or child_agreed is true);
