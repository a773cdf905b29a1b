-- where a window's appointments take place, printed on convocations (one line).
alter table windows add column location text;
