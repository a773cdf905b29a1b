-- at the counter: check-ins, no-shows, and staff corrections of a name. all three are
-- records of what happened: append-only.

-- checkins: the holder of a slot came, showed the check code and their document.
-- a slot is used once.
create table checkins (
    window_id      text not null,
    slot_id        text not null,
    entry_id       text not null references entries (id),
    assignment_id  bigint not null references slot_assignments (id),
    checked_in_at  text not null,
    -- the staff token that checked the person in
    checked_in_by  text not null,
    primary key (window_id, slot_id)
);

-- no_shows: the holder of a slot did not come; recorded by staff after the slot time.
create table no_shows (
    window_id      text not null,
    slot_id        text not null,
    entry_id       text not null references entries (id),
    assignment_id  bigint not null references slot_assignments (id),
    recorded_at    text not null,
    recorded_by    text not null,
    primary key (window_id, slot_id)
);

-- entry_corrections: a staff correction of an applicant's name, with its reason and
-- the names before and after. the only way an identity changes after registration.
create table entry_corrections (
    id                integer primary key,
    entry_id          text not null references entries (id),
    window_id         text not null,
    corrected_at      text not null,
    corrected_by      text not null,
    reason            text not null,
    old_family_name   text not null,
    old_given_names   text not null,
    new_family_name   text not null,
    new_given_names   text not null
);

create index entry_corrections_by_entry on entry_corrections (entry_id, id);

create trigger checkins_no_update before update on checkins
begin select raise(abort, 'checkins is append-only'); end;
create trigger checkins_no_delete before delete on checkins
begin select raise(abort, 'checkins is append-only'); end;
create trigger no_shows_no_update before update on no_shows
begin select raise(abort, 'no_shows is append-only'); end;
create trigger no_shows_no_delete before delete on no_shows
begin select raise(abort, 'no_shows is append-only'); end;
create trigger entry_corrections_no_update before update on entry_corrections
begin select raise(abort, 'entry_corrections is append-only'); end;
create trigger entry_corrections_no_delete before delete on entry_corrections
begin select raise(abort, 'entry_corrections is append-only'); end;
