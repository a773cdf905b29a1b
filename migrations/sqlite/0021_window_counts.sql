-- window_entry_counts and window_slot_counts: the counts a window summary shows,
-- kept by the database.
--
-- window_entry_counts: how many entries each window has in each status, kept up to
-- date by the database itself. the window summary shows these counts and is what many
-- people refresh when a window opens and on draw day; counting a national window's
-- million entries at every request would cost tens of milliseconds each time, reading
-- three rows costs nothing. the triggers below move the counts in the same statement
-- that inserts, changes or deletes an entry, so no code path can forget them, and a
-- rolled-back registration rolls its count back with it.
create table window_entry_counts (
    window_id  text not null references windows (id),
    status     text not null,
    n          bigint not null,
    primary key (window_id, status)
);

insert into window_entry_counts (window_id, status, n)
select window_id, status, count(*) from entries group by window_id, status;

create trigger entries_count_insert after insert on entries
begin
    insert into window_entry_counts (window_id, status, n) values (new.window_id, new.status, 1)
    on conflict (window_id, status) do update set n = n + 1;
end;

create trigger entries_count_update after update of window_id, status on entries
when new.window_id is not old.window_id or new.status is not old.status
begin
    update window_entry_counts set n = n - 1
    where window_id = old.window_id and status = old.status;
    insert into window_entry_counts (window_id, status, n) values (new.window_id, new.status, 1)
    on conflict (window_id, status) do update set n = n + 1;
end;

create trigger entries_count_delete after delete on entries
begin
    update window_entry_counts set n = n - 1
    where window_id = old.window_id and status = old.status;
end;

-- window_slot_counts: how many slots each window has. a national window has some
-- 50,000 slots; counting them took milliseconds at every read of the window, which
-- every registration makes. slots change only while a window is a draft.
create table window_slot_counts (
    window_id  text primary key references windows (id) on delete cascade,
    n          bigint not null
);

insert into window_slot_counts (window_id, n)
select window_id, count(*) from slots group by window_id;

create trigger slots_count_insert after insert on slots
begin
    insert into window_slot_counts (window_id, n) values (new.window_id, 1)
    on conflict (window_id) do update set n = n + 1;
end;

create trigger slots_count_delete after delete on slots
begin
    update window_slot_counts set n = n - 1 where window_id = old.window_id;
end;
