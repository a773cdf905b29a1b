-- the duplicate keys (hex digests) and the status of an entry are compared byte by
-- byte, as its id and window id already are (collate "C"). under the database's
-- default collation (c.utf-8 on the reference machine, fr_fr.utf-8 in a french
-- deployment) every comparison in the four partial unique indexes and in
-- entries_by_window_weight went through the locale's rules, for values that are ascii
-- digests and fixed words: the registration's insert and the close's index scan pay
-- for it on every row (docs/benchmarks.md, sixteenth round). the indexes on these
-- columns are built again, with their predicates, by the change of type.
-- (postgresql twin of ../sqlite/0031_entry_keys_compared_bytewise.sql)
alter table entries
    alter column document_key type text collate "C",
    alter column person_key type text collate "C",
    alter column email_key type text collate "C",
    alter column phone_key type text collate "C",
    alter column status type text collate "C";
