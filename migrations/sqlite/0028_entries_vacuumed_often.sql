-- nothing to change on sqlite (this file keeps the two migration folders paired): it
-- has no visibility map, and the index the close reads holds all it reads. the
-- postgresql twin, ../postgres/0028_entries_vacuumed_often.sql, has autovacuum come
-- back to entries after 1% of its rows changed.
select 1;
