-- draw_results no longer checks its two foreign keys row by row. every row is written
-- by the draw (or its follow-up) from the window's frozen entries, in the transaction
-- of the draw or after it, and entries and draws are never deleted, so the checks could
-- not fail; yet each one locked its parent row (`for key share`): the 50,000 selected
-- rows of a national draw spent 2.4 of their 2.9 s in them, the same draws row locked
-- 50,000 times and 50,000 entries rows rewritten for their lock (docs/benchmarks.md,
-- fifth round). the primary key (window, rank) and the unique entry_id stay.
-- twin of ../sqlite/0024_draw_results_unchecked.sql.
alter table draw_results drop constraint draw_results_entry_id_fkey;
alter table draw_results drop constraint draw_results_window_id_fkey;
