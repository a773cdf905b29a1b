-- the waiting list at work: a freed slot is never released to the public, it is
-- offered to the best-ranked entry still waiting, one person at a time, each with a
-- deadline. published without personal data at /api/v1/windows/{id}/reassignments.

-- slot_releases: a slot given back by its holder, and what became of it.
create table slot_releases (
    id                integer primary key,
    window_id         text not null,
    slot_id           text not null,
    -- the draw rank of the holder who gave it back
    released_by_rank  bigint not null,
    reason            text not null check (reason in ('cancelled')),
    released_at       text not null,
    -- the offer policy in force when the slot was freed, kept for every offer of its chain
    offer_hours       bigint not null check (offer_hours > 0),
    margin_hours      bigint not null check (margin_hours >= 0),
    -- null while offers run; 'accepted' once someone took it, 'unused' when nobody can
    outcome           text check (outcome in ('accepted', 'unused')),
    unused_reason     text check (unused_reason in ('no_one_waiting', 'too_late')),
    settled_at        text,
    check ((outcome is null) = (settled_at is null)),
    check ((outcome = 'unused') = (unused_reason is not null)),
    foreign key (window_id, slot_id) references slots (window_id, id)
);

create index slot_releases_by_window on slot_releases (window_id, id);

create trigger slot_releases_update before update on slot_releases
when old.outcome is not null
    or new.id is not old.id
    or new.window_id is not old.window_id
    or new.slot_id is not old.slot_id
    or new.released_by_rank is not old.released_by_rank
    or new.reason is not old.reason
    or new.released_at is not old.released_at
    or new.offer_hours is not old.offer_hours
    or new.margin_hours is not old.margin_hours
begin select raise(abort, 'slot_releases: only the outcome changes, once'); end;
create trigger slot_releases_no_delete before delete on slot_releases
begin select raise(abort, 'slot_releases is append-only'); end;

-- offers: a freed slot offered to one entry of the waiting list, until expires_at.
-- a release has at most one open offer, and an entry at most one open offer.
create table offers (
    id           integer primary key,
    release_id   bigint not null references slot_releases (id),
    window_id    text not null,
    slot_id      text not null,
    entry_id     text not null references entries (id),
    -- the entry's rank in the draw
    rank         bigint not null,
    offered_at   text not null,
    expires_at   text not null,
    state        text not null check (state in ('open', 'accepted', 'declined', 'expired')),
    answered_at  text,
    check ((state = 'open') = (answered_at is null))
);

create unique index offers_open_per_release on offers (release_id) where state = 'open';
create unique index offers_open_per_entry on offers (entry_id) where state = 'open';
create index offers_by_entry on offers (entry_id, id);
create index offers_by_release on offers (release_id, id);
create index offers_due on offers (expires_at) where state = 'open';

create trigger offers_update before update on offers
when old.state <> 'open'
    or new.id is not old.id
    or new.release_id is not old.release_id
    or new.entry_id is not old.entry_id
    or new.rank is not old.rank
    or new.offered_at is not old.offered_at
    or new.expires_at is not old.expires_at
begin select raise(abort, 'offers: only an open offer is answered, once'); end;
create trigger offers_no_delete before delete on offers
begin select raise(abort, 'offers is append-only'); end;
