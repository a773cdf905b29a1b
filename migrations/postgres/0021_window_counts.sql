-- window_entry_counts and window_slot_counts: the counts a window summary shows,
-- kept by the database.
--
-- window_entry_counts: how many entries each window has in each status, kept up to
-- date by the database itself (postgresql twin of ../sqlite/0021_window_counts.sql).
-- the window summary shows these counts and is what many people refresh when a window
-- opens and on draw day; counting a national window's million entries at every
-- request would cost tens of milliseconds each time, reading three rows costs nothing.
-- the triggers move the counts in the statement that inserts, changes or deletes
-- entries, so no code path can forget them, and a rolled-back registration rolls its
-- count back with it. they run once per statement over the rows it changed (transition
-- tables), so a registration batch of many rows moves each count once. writers are
-- serialised by the advisory lock every write transaction takes (store::WritePool),
-- so two of them never race for the same count row.
create table window_entry_counts (
    window_id  text collate "C" not null references windows (id),
    status     text not null,
    n          bigint not null,
    primary key (window_id, status)
);

insert into window_entry_counts (window_id, status, n)
select window_id, status, count(*) from entries group by window_id, status;

-- adds the rows of `added` and takes away those of `removed`, by window and status
create function tirage_count_entries_added() returns trigger language plpgsql as $$
begin
    insert into window_entry_counts (window_id, status, n)
    select window_id, status, count(*) from added group by window_id, status
    on conflict (window_id, status) do update set n = window_entry_counts.n + excluded.n;
    return null;
end $$;

create function tirage_count_entries_removed() returns trigger language plpgsql as $$
begin
    update window_entry_counts c set n = c.n - r.n
    from (select window_id, status, count(*) as n from removed group by window_id, status) r
    where c.window_id = r.window_id and c.status = r.status;
    return null;
end $$;

create function tirage_count_entries_changed() returns trigger language plpgsql as $$
begin
    update window_entry_counts c set n = c.n - r.n
    from (select o.window_id, o.status, count(*) as n
          from removed o join added a on a.id = o.id
          where a.window_id is distinct from o.window_id or a.status is distinct from o.status
          group by o.window_id, o.status) r
    where c.window_id = r.window_id and c.status = r.status;
    insert into window_entry_counts (window_id, status, n)
    select a.window_id, a.status, count(*)
    from added a join removed o on o.id = a.id
    where a.window_id is distinct from o.window_id or a.status is distinct from o.status
    group by a.window_id, a.status
    on conflict (window_id, status) do update set n = window_entry_counts.n + excluded.n;
    return null;
end $$;

create trigger entries_count_insert after insert on entries
referencing new table as added
for each statement execute function tirage_count_entries_added();

create trigger entries_count_update after update on entries
referencing old table as removed new table as added
for each statement execute function tirage_count_entries_changed();

create trigger entries_count_delete after delete on entries
referencing old table as removed
for each statement execute function tirage_count_entries_removed();

-- window_slot_counts: how many slots each window has. a national window has some
-- 50,000 slots; counting them took milliseconds at every read of the window, which
-- every registration makes. slots change only while a window is a draft.
create table window_slot_counts (
    window_id  text collate "C" primary key references windows (id) on delete cascade,
    n          bigint not null
);

insert into window_slot_counts (window_id, n)
select window_id, count(*) from slots group by window_id;

create function tirage_count_slots_added() returns trigger language plpgsql as $$
begin
    insert into window_slot_counts (window_id, n)
    select window_id, count(*) from added group by window_id
    on conflict (window_id) do update set n = window_slot_counts.n + excluded.n;
    return null;
end $$;

create function tirage_count_slots_removed() returns trigger language plpgsql as $$
begin
    update window_slot_counts c set n = c.n - r.n
    from (select window_id, count(*) as n from removed group by window_id) r
    where c.window_id = r.window_id;
    return null;
end $$;

create trigger slots_count_insert after insert on slots
referencing new table as added
for each statement execute function tirage_count_slots_added();

create trigger slots_count_delete after delete on slots
referencing old table as removed
for each statement execute function tirage_count_slots_removed();
