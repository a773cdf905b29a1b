-- nothing to change on sqlite (this file keeps the two migration folders paired): it
-- compares text byte by byte unless a column asks otherwise. the postgresql twin,
-- ../postgres/0031_entry_keys_compared_bytewise.sql, makes the duplicate keys and the
-- status of an entry compare that way there too.
select 1;
