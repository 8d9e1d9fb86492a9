-- Rights requests (access, portability, rectification, erasure, restriction, objection, and a
-- complaint about an access decision), tracked against their due date.
-- Personal data: subject_id, note_enc (AES-GCM, the internal note), outcome and refusal_reason.
-- Erasure of the subject blanks them and sets erased_at: the anonymous row still shows that a
-- request of that kind came in, when it was due and when it was answered (an erasure request
-- is closed after the erasure it asked for).
create table data_requests (
    id uuid primary key,
    kind text not null check (
        kind in (
            'access', 'portability', 'rectification', 'erasure', 'restriction', 'objection',
            'complaint'
        )
    ),
    subject_id text check (length(subject_id) between 1 and 128),
    channel text not null check (
        channel in ('guardian_page', 'staff_letter', 'staff_email', 'staff_phone')
    ),
    note_enc bytea,
    received_at timestamptz not null,
    due_at timestamptz not null check (due_at > received_at),
    status text not null check (status in ('open', 'in_progress', 'done', 'refused')),
    outcome text check (length(outcome) between 1 and 2000),
    refusal_reason text check (length(refusal_reason) between 1 and 2000),
    handler text check (length(handler) between 1 and 255),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    closed_at timestamptz,
    erased_at timestamptz,
    check ((status in ('done', 'refused')) = (closed_at is not null)),
    check (status <> 'refused' or refusal_reason is not null or erased_at is not null),
    check ((subject_id is null) = (erased_at is not null))
);

create index data_requests_subject on data_requests (subject_id) where subject_id is not null;
-- the work list: unanswered requests by due date (overdue first)
create index data_requests_unanswered_due
    on data_requests (due_at) where status in ('open', 'in_progress');
create index data_requests_due on data_requests (due_at, id);
