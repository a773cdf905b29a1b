-- carry-over: an entry that was drawn without a slot is carried into the next window
-- of the same site and procedure when that window opens, with one more unsuccessful
-- draw counted. carried_from links the new entry to the one it continues; each entry
-- is carried at most once.
-- (postgresql twin of ../sqlite/0008_carry_over.sql)
alter table entries add column carried_from text collate "C" references entries (id);

create unique index entries_carried_from on entries (carried_from) where carried_from is not null;
