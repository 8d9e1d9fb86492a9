-- The languages a request may be in are the service's translation catalogs: the service checks
-- a locale against them, so shipping a language needs no schema change. The column keeps only
-- the shape of a language code ("en", "sl", "pt_BR").
alter table consent_requests drop constraint consent_requests_locale_check;
alter table consent_requests
    add constraint consent_requests_locale_format check (locale ~ '^[a-z]{2,3}(_[A-Z]{2})?$');
