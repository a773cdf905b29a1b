-- the close reads every eligible entry of a window from entries_by_window_weight with
-- an index-only scan, which visits the table only for pages the visibility map does not
-- mark all-visible; vacuum sets those marks. by default autovacuum comes back to a
-- table after 20% of its rows are new or changed, so when a national window closes up
-- to a fifth of its million entries may still need a visit to the table each: a close
-- right after a million were written took 3.3 s instead of 0.7 s on the reference
-- machine (docs/benchmarks.md, ninth round). after 1% here, each vacuum has little to
-- do and the close finds the table almost entirely marked. postgresql only: sqlite has
-- no visibility map, its index holds all the close reads (twin of
-- ../sqlite/0028_entries_vacuumed_often.sql).
alter table entries set (
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02
);
