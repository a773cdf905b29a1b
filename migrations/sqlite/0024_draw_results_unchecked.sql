-- draw_results no longer checks its two foreign keys row by row. every row is written
-- by the draw (or its follow-up) from the window's frozen entries, in the transaction
-- of the draw or after it, and entries and draws are never deleted, so the checks could
-- not fail; yet they cost a lookup of the draws row and of the entry for each of a
-- national draw's 50,000 selected rows (docs/benchmarks.md, fifth round). the primary
-- key (window, rank), the unique entry_id and the append-only triggers stay.
-- sqlite cannot drop a constraint: the table is rebuilt without them.
-- twin of ../postgres/0024_draw_results_unchecked.sql.
create table draw_results_unchecked (
    window_id  text not null,
    rank       bigint not null,
    entry_id   text not null,
    slot_id    text,
    primary key (window_id, rank),
    unique (entry_id)
);
insert into draw_results_unchecked (window_id, rank, entry_id, slot_id)
select window_id, rank, entry_id, slot_id from draw_results;
drop table draw_results;
alter table draw_results_unchecked rename to draw_results;
create trigger draw_results_no_update before update on draw_results
begin select raise(abort, 'draw_results is append-only'); end;
create trigger draw_results_no_delete before delete on draw_results
begin select raise(abort, 'draw_results is append-only'); end;
