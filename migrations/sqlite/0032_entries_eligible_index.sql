-- the close's index holds eligible entries only, and the index by window follows the
-- order of registration.
--
-- entries_by_window_weight (window_id, status, id, weight) gave every registration one
-- more index entry at a random place (the id is random): one more page of the log a
-- registration, about one in six, at the moment a window opens and everyone registers
-- at once. the close reads eligible entries only, and an online registration is
-- pending until its code is verified, later and one person at a time, so the close's
-- index now covers eligible entries alone: a registration no longer writes to it.
--
-- what else looked entries up by window and status (the result mails to the entries
-- left pending at the close, erasing a window's personal data) uses entries_by_window,
-- whose order is that of registration: a new entry goes at its end, in a page the
-- rest of its batch writes anyway. the mails to pending entries page through it by
-- (created_at, id) (docs/benchmarks.md, eighteenth round).
-- (sqlite twin of ../postgres/0032_entries_eligible_index.sql)
drop index entries_by_window_weight;
create index entries_eligible on entries (window_id, id, weight) where status = 'eligible';
create index entries_by_window on entries (window_id, status, created_at, id);

-- where the result mails to pending entries have got to, with the entry's id: the
-- time of registration of the last one mailed. null while none is, or for a
-- follow-up begun by an earlier version, which paged by id alone and goes on so.
alter table draw_followups add column mailed_excluded_at text;
