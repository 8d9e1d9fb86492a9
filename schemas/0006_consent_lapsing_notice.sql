-- The notice before a consent lapses because the child comes of age (guardian email and the
-- app's consent.lapsing webhook) goes out once per consent: the sweep that handles a consent
-- sets lapsing_notified_at in the same transaction that queues the notice. It is also set,
-- with nothing sent, for a consent whose lapse is not the coming of age (the maximum
-- validity) or is less than a day away, so no sweep looks at that consent again.
alter table consents add column lapsing_notified_at timestamptz;

create index consents_lapsing_notice_due on consents (expires_at)
    where status = 'granted' and lapsing_notified_at is null;
