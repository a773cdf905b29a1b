-- entries: one registration of one applicant in one window.
-- (postgresql twin of ../sqlite/0002_entries.sql)
--
-- the four *_key columns are hashes of folded identity values; the partial unique
-- indexes below make the database itself refuse a second live entry for the same
-- document, person, mailbox or phone in a window, even under concurrent requests from
-- several instances. a withdrawn entry no longer blocks its owner from registering again.
create table entries (
    id                  text collate "C" primary key,           -- 32 lowercase hex, public
    window_id           text collate "C" not null references windows (id),
    -- pending_verification | eligible | withdrawn
    status              text not null,
    channel             text not null check (channel in ('online', 'counter')),
    access_code_hash    bytea not null,
    family_name         text not null,
    given_names         text not null,
    birth_date          date not null,
    nationality         text not null,
    document_kind       text not null check (document_kind in ('foreigner_number', 'passport')),
    document_number     text not null,
    document_country    text not null,
    email               text,
    phone               text,
    permit_expires_on   date,
    language            text not null,
    unsuccessful_draws  bigint not null default 0,
    weight              bigint not null check (weight between 1 and 1000000),
    document_key        text not null,
    person_key          text not null,
    email_key           text,
    phone_key           text,
    -- the staff token that registered the entry at the counter
    registered_by       text,
    created_at          timestamptz not null,
    verified_at         timestamptz,
    withdrawn_at        timestamptz
);

create unique index entries_document_key on entries (window_id, document_key) where status <> 'withdrawn';
create unique index entries_person_key on entries (window_id, person_key) where status <> 'withdrawn';
create unique index entries_email_key on entries (window_id, email_key) where status <> 'withdrawn';
create unique index entries_phone_key on entries (window_id, phone_key) where status <> 'withdrawn';
create index entries_by_window on entries (window_id, status, id);

-- verification_codes: the live one-time code of an entry, hashed. a new code
-- replaces the old one; after max attempts the code is dead.
create table verification_codes (
    entry_id    text collate "C" primary key references entries (id),
    code_hash   bytea not null,
    expires_at  timestamptz not null,
    attempts    bigint not null default 0,
    sends       bigint not null default 1,
    sent_at     timestamptz not null
);
