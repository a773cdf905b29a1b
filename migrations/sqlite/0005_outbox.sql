-- outbox: mails to send, written in the same transaction as what caused them, so
-- that an acknowledged registration never loses its mail. a background task sends
-- what is due and retries with back-off; the body is erased once sent.
create table outbox (
    id               integer primary key,
    kind             text not null,
    recipient        text not null,
    subject          text not null,
    body             text not null,
    created_at       text not null,
    next_attempt_at  text not null,
    attempts         bigint not null default 0,
    sent_at          text,
    failed_at        text,
    last_error       text
);

create index outbox_due on outbox (next_attempt_at) where sent_at is null and failed_at is null;
