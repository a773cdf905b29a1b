-- nothing to change on sqlite (this file keeps the two migration folders paired): the
-- close has the key of the packed entries to their commitment checked at commit with
-- `pragma defer_foreign_keys`, which needs no change of the schema. the postgresql
-- twin, ../postgres/0027_entry_chunks_key_deferrable.sql, makes that key deferrable.
select 1;
