-- nothing to change on postgresql (this file keeps the two migration folders paired):
-- the sqlite twin, ../sqlite/0033_entry_counts_without_upsert.sql, rewrites its count
-- triggers so that an insert into entries needs no statement journal there, a copy
-- of pages that postgresql never makes.
select 1;
