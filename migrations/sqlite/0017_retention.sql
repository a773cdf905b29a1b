-- retention: a configured time after the last slot of a window, the personal data of
-- its entries is erased. the entry rows stay, with what the draw and the published
-- bundle refer to (ids, weights, statuses, counts); names, birth date, nationality,
-- document, contacts and the identity keys derived from them (plain digests, which
-- could be recomputed from a guess) are blanked.

-- when the window's personal data was erased: set once, by a conditional update, so
-- that the erasure happens exactly once per window even with several instances.
alter table windows add column personal_data_erased_at text;

-- when this entry's personal data was erased; readers refuse erased entries.
alter table entries add column anonymised_at text;

-- entry_corrections stays append-only, with one exception: retention may blank the
-- names and the free-text reason, every other column unchanged.
drop trigger entry_corrections_no_update;
create trigger entry_corrections_no_update before update on entry_corrections
when not (new.id is old.id
          and new.entry_id is old.entry_id
          and new.window_id is old.window_id
          and new.corrected_at is old.corrected_at
          and new.corrected_by is old.corrected_by
          and new.reason = ''
          and new.old_family_name = ''
          and new.old_given_names = ''
          and new.new_family_name = ''
          and new.new_given_names = '')
begin select raise(abort, 'entry_corrections is append-only'); end;

-- the retention task looks for windows whose data is still there
create index windows_retention on windows (personal_data_erased_at) where personal_data_erased_at is null;
