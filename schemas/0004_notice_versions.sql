-- Every notice a guardian was shown, word for word: policy_version of a request or consent is
-- "<label>+<locale>.<hash>", and the text behind it is kept here from its first use, so the
-- exact notice of any consent can be printed later (`consent-service notice show`).
create table notice_versions (
    version text primary key check (length(version) between 1 and 200),
    label text not null,
    locale text not null check (locale ~ '^[a-z]{2,3}(_[A-Z]{2})?$'),
    content_hash text not null check (content_hash ~ '^[0-9a-f]{12}$'),
    text text not null,
    first_used_at timestamptz not null
);

-- A re-consent request asks the guardian of a live consent again, under the current notice.
-- No foreign key: erasure deletes a subject's requests and consents together.
alter table consent_requests add column reconsent_of uuid;
create index consent_requests_reconsent_of on consent_requests (reconsent_of)
    where reconsent_of is not null;

-- When a consent on an older notice ends unless its guardian consents again (its expires_at is
-- brought forward to this instant when the re-consent request is opened).
alter table consents add column reconsent_due_at timestamptz;
