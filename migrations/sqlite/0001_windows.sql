-- windows: one lottery for a site and a procedure, and the slots it fills.
--
-- times are written by the application as RFC 3339 text in UTC; a window moves
-- draft -> open -> closed -> drawn, or to cancelled from draft or open.
create table windows (
    id                      text primary key,
    site                    text not null,
    procedure               text not null,
    state                   text not null default 'draft'
                            check (state in ('draft', 'open', 'closed', 'drawn', 'cancelled')),
    registration_opens_at   text not null,
    registration_closes_at  text not null,
    draw_at                 text not null,
    -- the public randomness named before registration opens (draw spec section 3), or 'none'
    beacon                  text not null,
    -- the urgency weighting policy, as json; frozen once the window is open
    policy                  text not null,
    -- 32 random bytes drawn when the window opens; never shown before the draw
    secret                  blob check (secret is null or length(secret) = 32),
    -- hex(sha256(secret)), published when the window opens
    seed_commitment         text,
    -- hex commitment published at close (draw spec section 4)
    commitment              text,
    created_at              text not null,
    updated_at              text not null,
    opened_at               text,
    closed_at               text,
    drawn_at                text,
    cancelled_at            text,
    check ((state = 'draft') = (secret is null) or state = 'cancelled')
);

create index windows_by_site on windows (site, procedure, registration_opens_at);

-- slots: appointments a window hands out. starts_at is text written exactly
-- YYYY-MM-DDTHH:MM:SSZ, the form the draw hashes, so text order is time order.
create table slots (
    window_id  text not null references windows (id) on delete cascade,
    id         text not null,
    starts_at  text not null check (length(starts_at) = 20),
    counter    text not null,
    primary key (window_id, id),
    unique (window_id, starts_at, counter)
);
