-- the four duplicate-key indexes lead with the key, then the window.
--
-- every registration adds an entry to each of them, at a random place (the keys are
-- digests), and each step down an index compares the new entry with those it passes.
-- led by the window, each comparison first went through the window's id, the same
-- for nearly every entry of a national window, before reaching the key that tells
-- them apart. led by the key, nearly every comparison ends at the first column. the
-- lookups name both columns, so either order serves them: the writer's batches take
-- about 4% fewer instructions (docs/benchmarks.md, twenty-second round).
-- building them again reads the whole entries table once, at the upgrade.
-- (postgresql twin of ../sqlite/0034_entry_keys_first.sql)
drop index entries_document_key;
drop index entries_person_key;
drop index entries_email_key;
drop index entries_phone_key;
create unique index entries_document_key on entries (document_key, window_id) where status <> 'withdrawn';
create unique index entries_person_key on entries (person_key, window_id) where status <> 'withdrawn';
create unique index entries_email_key on entries (email_key, window_id) where status <> 'withdrawn';
create unique index entries_phone_key on entries (phone_key, window_id) where status <> 'withdrawn';
