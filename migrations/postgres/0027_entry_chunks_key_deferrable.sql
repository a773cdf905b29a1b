-- the close writes the packed entries (draw_entry_chunks) while other threads compute
-- the merkle root and the commitment from them; the commitments row they point to is
-- inserted after, in the same transaction. their key is made deferrable so that the
-- close can have it checked at commit (`set constraints ... deferred`): still checked,
-- and a close that failed before its commitment leaves no row (docs/benchmarks.md,
-- ninth round). everywhere else it stays checked at once. on sqlite the close defers
-- it with `pragma defer_foreign_keys`, which needs no change of the schema (twin of
-- ../sqlite/0027_entry_chunks_key_deferrable.sql).
alter table draw_entry_chunks
    alter constraint draw_entry_chunks_window_id_fkey deferrable initially immediate;
