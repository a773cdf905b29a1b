-- windows: one lottery for a site and a procedure, and the slots it fills.
-- (postgresql twin of ../sqlite/0001_windows.sql: same tables, columns and rules;
-- times are timestamptz, the secret is bytea, and identifiers compare bytewise, as
-- in sqlite and in the draw, with the "C" collation.)
--
-- a window moves draft -> open -> closed -> drawn, or to cancelled from draft or open.
create table windows (
    id                      text collate "C" primary key,
    site                    text not null,
    procedure               text not null,
    state                   text not null default 'draft'
                            check (state in ('draft', 'open', 'closed', 'drawn', 'cancelled')),
    registration_opens_at   timestamptz not null,
    registration_closes_at  timestamptz not null,
    draw_at                 timestamptz not null,
    -- the public randomness named before registration opens (draw spec section 3), or 'none'
    beacon                  text not null,
    -- the urgency weighting policy, as json; frozen once the window is open
    policy                  text not null,
    -- 32 random bytes drawn when the window opens; never shown before the draw
    secret                  bytea check (secret is null or length(secret) = 32),
    -- hex(sha256(secret)), published when the window opens
    seed_commitment         text,
    -- hex commitment published at close (draw spec section 4)
    commitment              text,
    created_at              timestamptz not null,
    updated_at              timestamptz not null,
    opened_at               timestamptz,
    closed_at               timestamptz,
    drawn_at                timestamptz,
    cancelled_at            timestamptz,
    check ((state = 'draft') = (secret is null) or state = 'cancelled')
);

create index windows_by_site on windows (site, procedure, registration_opens_at);

-- slots: appointments a window hands out. starts_at is text written exactly
-- YYYY-MM-DDTHH:MM:SSZ, the form the draw hashes, so text order is time order
-- (compared bytewise: the column uses the "C" collation).
create table slots (
    window_id  text collate "C" not null references windows (id) on delete cascade,
    id         text collate "C" not null,
    starts_at  text collate "C" not null check (length(starts_at) = 20),
    counter    text collate "C" not null,
    primary key (window_id, id),
    unique (window_id, starts_at, counter)
);
