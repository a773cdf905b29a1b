-- compact storage of what a close and a draw freeze (docs/architecture.md, "Closing
-- and drawing a national window"). a window of a million entries used to write a row
-- per entry at close (draw_entries) and at the draw (draw_results); both now write a
-- few hundred rows of packed bytes instead. windows closed or drawn before keep their
-- rows, which the service still reads.

-- draw_entry_chunks: the eligible entries frozen at close, in leaf order (ascending
-- id), a few thousand per row. payload holds, for each entry of the chunk, exactly the
-- leaf payload of the draw spec: the 16-byte id then the weight as 4 bytes big-endian
-- (20 bytes). first_leaf is the leaf index of its first entry and first_id that
-- entry's id in hex, so that one entry is found by reading one chunk.
create table draw_entry_chunks (
    window_id   text not null references commitments (window_id),
    first_leaf  bigint not null,
    first_id    text not null,
    n           bigint not null check (n > 0),
    payload     blob not null check (length(payload) = 20 * n),
    primary key (window_id, first_leaf)
);
create unique index draw_entry_chunks_by_id on draw_entry_chunks (window_id, first_id);

-- draw_rank_chunks: the draw's full ranking, packed. kind 'by_rank': for the ranks
-- first .. first + n - 1, the leaf index of the entry at each rank (4 bytes
-- big-endian each). kind 'by_leaf': for the leaves first .. first + n - 1, the rank of
-- each (4 bytes big-endian each), so that one entry's rank is one small read.
create table draw_rank_chunks (
    window_id  text not null references draws (window_id),
    kind       text not null check (kind in ('by_rank', 'by_leaf')),
    first      bigint not null,
    n          bigint not null check (n > 0),
    payload    blob not null check (length(payload) = 4 * n),
    primary key (window_id, kind, first)
);

create trigger draw_entry_chunks_no_update before update on draw_entry_chunks
begin select raise(abort, 'draw_entry_chunks is append-only'); end;
create trigger draw_entry_chunks_no_delete before delete on draw_entry_chunks
begin select raise(abort, 'draw_entry_chunks is append-only'); end;
create trigger draw_rank_chunks_no_update before update on draw_rank_chunks
begin select raise(abort, 'draw_rank_chunks is append-only'); end;
create trigger draw_rank_chunks_no_delete before delete on draw_rank_chunks
begin select raise(abort, 'draw_rank_chunks is append-only'); end;

-- draw_results_fill: draw_results (a row per entry, which the waiting list, the result
-- mails and the carry-over query with sql) is written at the draw for the selected
-- ranks only; the waiting ranks are added after the draw, in chunks, each in its own
-- transaction that also moves filled_rank (the last rank written). done_at is set
-- when every rank is there. a window drawn before this table has no row: its
-- draw_results are complete.
create table draw_results_fill (
    window_id    text primary key references draws (window_id),
    filled_rank  bigint not null,
    n_entries    bigint not null,
    done_at      text
);

-- the close reads the id and weight of every eligible entry of the window. an index
-- that holds both answers from the index alone, without visiting the wide entry rows
-- (measured on sqlite, 100,000 entries: 0.37 s down to 0.02 s). it replaces
-- entries_by_window, whose columns it starts with, so every query that used that one
-- can use this one.
drop index entries_by_window;
create index entries_by_window_weight on entries (window_id, status, id, weight);
