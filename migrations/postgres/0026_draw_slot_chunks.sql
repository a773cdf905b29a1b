-- the slots a draw gives, packed: the draw used to write a draw_results row for each
-- selected rank (50,000 rows with two indexes, one keyed by a random entry id, in the
-- draw's transaction: on postgresql most of the time it took to record a national
-- draw, docs/benchmarks.md, ninth round). it now writes these few rows instead, and
-- the draw's follow-up writes every rank of draw_results, selected ones included.
-- windows drawn before keep their selected rows in draw_results and no chunk here.
--
-- draw_slot_chunks: for the selected ranks first .. first + n - 1, slot_ids is a JSON
-- array of the id of the slot each rank was given, in rank order.
-- twin of ../sqlite/0026_draw_slot_chunks.sql.
create table draw_slot_chunks (
    window_id  text collate "C" not null references draws (window_id),
    first      bigint not null check (first > 0),
    n          bigint not null check (n > 0),
    slot_ids   text not null,
    primary key (window_id, first)
);
alter table draw_slot_chunks alter column slot_ids set storage external;

create trigger draw_slot_chunks_no_update before update on draw_slot_chunks
for each row execute function tirage_refuse('draw_slot_chunks is append-only');
create trigger draw_slot_chunks_no_delete before delete on draw_slot_chunks
for each row execute function tirage_refuse('draw_slot_chunks is append-only');
