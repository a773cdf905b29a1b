-- nothing to change on sqlite, which never compresses what it stores (this file keeps
-- the two migration folders paired; the postgresql twin,
-- ../postgres/0022_draw_bytes_uncompressed.sql, stores the bundle and the packed
-- entries and ranking of a draw without compression).
select 1;
