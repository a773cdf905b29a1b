-- where a window's appointments take place, printed on convocations (one line).
-- (postgresql twin of ../sqlite/0009_window_location.sql)
alter table windows add column location text;
