-- named slots after the draw: who holds each slot, and the key of the check codes
-- printed on convocations (docs/architecture.md, "Named slots and the waiting list").

-- check_code_key: the server's hmac-sha-256 key for check codes. one row, made at the
-- first start from os randomness; never shown by any route, never changed.
create table check_code_key (
    id          bigint primary key check (id = 1),
    key         blob not null check (length(key) = 32),
    created_at  text not null
);

create trigger check_code_key_no_update before update on check_code_key
begin select raise(abort, 'check_code_key is never changed'); end;
create trigger check_code_key_no_delete before delete on check_code_key
begin select raise(abort, 'check_code_key is never deleted'); end;

-- draw_followups: what was done after a window's draw. the row is written with the
-- slot holders, in one transaction, so they are recorded once. the result mails are
-- then queued in chunks, each in its own transaction that also moves the cursors
-- (drawn entries by rank, then entries left out by id), so that a window of a million
-- entries never holds the write lock for long and a restart resumes where it stopped.
create table draw_followups (
    window_id          text primary key references draws (window_id),
    assignments        bigint not null,
    recorded_at        text not null,
    -- result mails queued so far, and where the next chunk starts
    mails              bigint not null default 0,
    mailed_rank        bigint not null default 0,
    mailed_excluded    text not null default '',
    mails_done_at      text
);

-- slot_assignments: who holds a slot, since when, and until when. a row is added when
-- the draw gives a slot (reason 'draw') or an offer of a freed slot is accepted
-- ('offer'); released_at is set once, when the holder cancels. the partial unique
-- indexes make the database refuse a slot with two live holders, or an entry holding
-- two slots, whatever the concurrency.
create table slot_assignments (
    id            integer primary key,
    window_id     text not null,
    slot_id       text not null,
    entry_id      text not null references entries (id),
    -- the holder's rank in the draw
    rank          bigint not null,
    reason        text not null check (reason in ('draw', 'offer')),
    since         text not null,
    -- hex sha256 of the current check code (domain::checkcode), to find the holder at
    -- check-in without storing the code; replaced when staff correct the holder's name
    check_digest  text not null,
    released_at   text,
    foreign key (window_id, slot_id) references slots (window_id, id)
);

create unique index slot_assignments_live_slot on slot_assignments (window_id, slot_id)
    where released_at is null;
create unique index slot_assignments_live_entry on slot_assignments (entry_id)
    where released_at is null;
create index slot_assignments_by_entry on slot_assignments (entry_id, id);
create index slot_assignments_by_check on slot_assignments (check_digest)
    where released_at is null;

-- only the check digest changes freely; released_at is set once; nothing else moves
create trigger slot_assignments_update before update on slot_assignments
when new.id is not old.id
    or new.window_id is not old.window_id
    or new.slot_id is not old.slot_id
    or new.entry_id is not old.entry_id
    or new.rank is not old.rank
    or new.reason is not old.reason
    or new.since is not old.since
    or (old.released_at is not null and new.released_at is not old.released_at)
begin select raise(abort, 'slot_assignments: only check_digest, and released_at once, change'); end;
create trigger slot_assignments_no_delete before delete on slot_assignments
begin select raise(abort, 'slot_assignments is append-only'); end;

-- cancellations: an applicant gave up their slot, or their place on the waiting list.
create table cancellations (
    entry_id      text primary key references entries (id),
    window_id     text not null,
    -- the slot given back; null for a place on the waiting list
    slot_id       text,
    cancelled_at  text not null
);

create trigger cancellations_no_update before update on cancellations
begin select raise(abort, 'cancellations is append-only'); end;
create trigger cancellations_no_delete before delete on cancellations
begin select raise(abort, 'cancellations is append-only'); end;
