-- the bytes a close and a draw store (the bundle, the packed entries and ranking) are
-- kept as they are, without compression (postgresql twin of
-- ../sqlite/0022_draw_bytes_uncompressed.sql, where there is nothing to change).
--
-- a value over 2 kB goes to the table's toast storage, compressed first by default
-- (pglz). for a national window that meant compressing the 125 MB bundle, 3.2 s of
-- the draw's transaction for 42% less space, and trying to compress each 80 kB chunk
-- of packed entries (20 MB in all) at the close, 0.9 s, only to store them as they
-- were: random ids do not compress. with `external` the values are still moved out
-- of line in pieces, written to the log and durable as before, just not compressed
-- (docs/benchmarks.md, fourth round). rows stored already stay as they are.
alter table bundles alter column body set storage external;
alter table draw_entry_chunks alter column payload set storage external;
alter table draw_rank_chunks alter column payload set storage external;
