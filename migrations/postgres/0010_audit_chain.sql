-- the audit trail becomes a hash chain (format tirage-audit-v1, docs/auditing.md).
-- (postgresql twin of ../sqlite/0010_audit_chain.sql)
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
-- transaction that records the event: that update takes the row lock, so that appends
-- from every instance are serialised and the chain never forks. count is the seq of
-- the last event.
create table audit_head (
    id     bigint primary key check (id = 1),
    count  bigint not null,
    hash   text not null,
    at     timestamptz
);

insert into audit_head (id, count, hash)
values (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- events recorded before this migration have no hashes yet: the service chains them,
-- in id order, when it starts (store::audit::seal_audit_log). that one update, from no
-- hash to a hash, is the only change an event ever allows.
drop trigger audit_events_no_update on audit_events;

create trigger audit_events_no_update before update on audit_events
for each row when (old.hash is not null
    or new.hash is null
    or new.id is distinct from old.id
    or new.at is distinct from old.at
    or new.actor is distinct from old.actor
    or new.action is distinct from old.action
    or new.window_id is distinct from old.window_id
    or new.entry_id is distinct from old.entry_id
    or new.detail is distinct from old.detail)
execute function tirage_refuse('audit_events is append-only');

create trigger audit_head_no_delete before delete on audit_head
for each row execute function tirage_refuse('audit_head cannot be deleted');

create trigger audit_head_forward_only before update on audit_head
for each row when (new.count < old.count or new.count > old.count + 1)
execute function tirage_refuse('audit_head moves forward one event at a time');
