-- retention: a configured time after the last slot of a window, the personal data of
-- its entries is erased. (postgresql twin of ../sqlite/0017_retention.sql)
--
-- the entry rows stay, with what the draw and the published bundle refer to (ids,
-- weights, statuses, counts); names, birth date, nationality, document, contacts and
-- the identity keys derived from them (plain digests, which could be recomputed from a
-- guess) are blanked.

-- when the window's personal data was erased: set once, by a conditional update, so
-- that the erasure happens exactly once per window even with several instances.
alter table windows add column personal_data_erased_at timestamptz;

-- when this entry's personal data was erased; readers refuse erased entries.
alter table entries add column anonymised_at timestamptz;

-- a date column cannot hold sqlite's empty text: an erased birth date is null here.
alter table entries alter column birth_date drop not null;

-- entry_corrections stays append-only, with one exception: retention may blank the
-- names and the free-text reason, every other column unchanged.
create function tirage_corrections_erase_only() returns trigger language plpgsql as $$
begin
    if new.id is distinct from old.id
       or new.entry_id is distinct from old.entry_id
       or new.window_id is distinct from old.window_id
       or new.corrected_at is distinct from old.corrected_at
       or new.corrected_by is distinct from old.corrected_by
       or new.reason <> ''
       or new.old_family_name <> ''
       or new.old_given_names <> ''
       or new.new_family_name <> ''
       or new.new_given_names <> '' then
        raise exception 'entry_corrections is append-only' using errcode = 'restrict_violation';
    end if;
    return new;
end;
$$;

drop trigger entry_corrections_no_update on entry_corrections;
create trigger entry_corrections_no_update before update on entry_corrections
for each row execute function tirage_corrections_erase_only();

-- the retention task looks for windows whose data is still there
create index windows_retention on windows (personal_data_erased_at) where personal_data_erased_at is null;
