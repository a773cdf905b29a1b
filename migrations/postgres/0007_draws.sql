-- the record of a window's close and draw (draw spec sections 1-9). every table here
-- is append-only: what was committed and drawn is never changed afterwards.
-- (postgresql twin of ../sqlite/0007_draws.sql)

-- commitments: what is published when registration closes, before any randomness.
create table commitments (
    window_id       text collate "C" primary key references windows (id),
    n_entries       bigint not null,
    entries_root    text not null,
    n_slots         bigint not null,
    slots_hash      text not null,
    seed_commitment text not null,
    beacon          text not null,
    commitment      text not null,
    committed_at    timestamptz not null
);

-- draw_entries: the eligible entries frozen at close, in entry order (ascending id),
-- with the weight the draw uses. leaf_index is the position in the merkle tree.
create table draw_entries (
    window_id   text collate "C" not null references commitments (window_id),
    leaf_index  bigint not null,
    entry_id    text collate "C" not null references entries (id),
    weight      bigint not null check (weight between 1 and 1000000),
    primary key (window_id, leaf_index),
    unique (entry_id)
);

-- draws: the revealed inputs and the outcome of the draw.
create table draws (
    window_id     text collate "C" primary key references commitments (window_id),
    beacon_value  text not null,     -- hex, empty for beacon 'none'
    seed          text not null,
    results_hash  text not null,
    n_selected    bigint not null,
    statistics    text not null,     -- json, derived from the results
    drawn_at      timestamptz not null
);

-- draw_results: the full ranking; slot_id is the slot given by the draw itself
-- (later reassignments of cancelled slots are recorded elsewhere).
create table draw_results (
    window_id  text collate "C" not null references draws (window_id),
    rank       bigint not null,
    entry_id   text collate "C" not null references entries (id),
    slot_id    text collate "C",
    primary key (window_id, rank),
    unique (entry_id)
);

-- bundles: the published bundle exactly as served, written once at the draw.
create table bundles (
    window_id  text collate "C" primary key references draws (window_id),
    sha256     text not null,
    body       bytea not null
);

create trigger commitments_no_update before update on commitments
for each row execute function tirage_refuse('commitments is append-only');
create trigger commitments_no_delete before delete on commitments
for each row execute function tirage_refuse('commitments is append-only');
create trigger draw_entries_no_update before update on draw_entries
for each row execute function tirage_refuse('draw_entries is append-only');
create trigger draw_entries_no_delete before delete on draw_entries
for each row execute function tirage_refuse('draw_entries is append-only');
create trigger draws_no_update before update on draws
for each row execute function tirage_refuse('draws is append-only');
create trigger draws_no_delete before delete on draws
for each row execute function tirage_refuse('draws is append-only');
create trigger draw_results_no_update before update on draw_results
for each row execute function tirage_refuse('draw_results is append-only');
create trigger draw_results_no_delete before delete on draw_results
for each row execute function tirage_refuse('draw_results is append-only');
create trigger bundles_no_update before update on bundles
for each row execute function tirage_refuse('bundles is append-only');
create trigger bundles_no_delete before delete on bundles
for each row execute function tirage_refuse('bundles is append-only');
