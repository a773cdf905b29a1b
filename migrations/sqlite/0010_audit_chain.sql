-- the audit trail becomes a hash chain (format tirage-audit-v1, docs/auditing.md).
--
-- each event gets its place in the chain (seq: 1, 2, 3, ... without gaps), the hash of
-- the event before it (prev_hash; 64 zeros for the first) and its own hash, a sha256
-- over its content and prev_hash. editing an event changes its hash, deleting one
-- leaves a gap, and the published head (count and last hash) pins the whole history.
alter table audit_events add column seq bigint;
alter table audit_events add column prev_hash text;
alter table audit_events add column hash text;

create unique index audit_events_by_seq on audit_events (seq);

-- audit_head: the end of the chain, one row. every append updates it first, in the
-- transaction that records the event: that write takes the lock (the write lock on
-- sqlite, the row lock on postgresql) so that appends are serialised and the chain
-- never forks. count is the seq of the last event.
create table audit_head (
    id     bigint primary key check (id = 1),
    count  bigint not null,
    hash   text not null,
    at     text
);

insert into audit_head (id, count, hash)
values (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- events recorded before this migration have no hashes yet: the service chains them,
-- in id order, when it starts (store::audit::seal_audit_log). that one update, from no
-- hash to a hash, is the only change an event ever allows.
drop trigger audit_events_no_update;

create trigger audit_events_no_update before update on audit_events
when old.hash is not null
    or new.hash is null
    or new.id is not old.id
    or new.at is not old.at
    or new.actor is not old.actor
    or new.action is not old.action
    or new.window_id is not old.window_id
    or new.entry_id is not old.entry_id
    or new.detail is not old.detail
begin
    select raise(abort, 'audit_events is append-only');
end;

create trigger audit_head_no_delete before delete on audit_head
begin
    select raise(abort, 'audit_head cannot be deleted');
end;

create trigger audit_head_forward_only before update on audit_head
when new.count < old.count or new.count > old.count + 1
begin
    select raise(abort, 'audit_head moves forward one event at a time');
end;
