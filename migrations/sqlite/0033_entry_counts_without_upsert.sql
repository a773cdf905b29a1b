-- the triggers that keep the counts of entries add to a count with a plain update,
-- after inserting a zero count that is skipped where one exists, instead of an
-- upsert's "do update".
--
-- an upsert's "do update" always runs with the abort policy, so every insert into
-- entries could stop half-way through its triggers, and sqlite kept a statement
-- journal for it: a copy of every page the insert first changed, in memory, so that
-- the statement alone could be undone. under load that copy was a sixth of the
-- registrar's writer (docs/benchmarks.md, twentieth round). with these triggers, the
-- registrar's own connection inserts entries "or rollback" (a constraint that fails
-- rolls the whole batch back, and the batch is stored again one by one, each with
-- its own answer), and sqlite keeps no statement journal for the insert.
--
-- the zero count is inserted from values, not from a select that looks for the row
-- first: an insert whose select reads its own table goes through a temporary table,
-- which cost more than the journal it replaced. the counts are the same: the zero
-- row is skipped where one exists, and the update then adds one, in the same
-- statement as the entry's insert.
drop trigger entries_count_insert;
create trigger entries_count_insert after insert on entries
begin
    insert into window_entry_counts (window_id, status, n) values (new.window_id, new.status, 0)
    on conflict do nothing;
    update window_entry_counts set n = n + 1
    where window_id = new.window_id and status = new.status;
end;

drop trigger entries_count_update;
create trigger entries_count_update after update of window_id, status on entries
when new.window_id is not old.window_id or new.status is not old.status
begin
    update window_entry_counts set n = n - 1
    where window_id = old.window_id and status = old.status;
    insert into window_entry_counts (window_id, status, n) values (new.window_id, new.status, 0)
    on conflict do nothing;
    update window_entry_counts set n = n + 1
    where window_id = new.window_id and status = new.status;
end;

drop trigger entries_count_channel;
create trigger entries_count_channel after insert on entries
begin
    insert into entry_channel_counts (channel, n) values (new.channel, 0)
    on conflict do nothing;
    update entry_channel_counts set n = n + 1 where channel = new.channel;
end;
