-- signing_keys: the ed25519 keys the service signs attestations with. the current key
-- is the one not retired; a retired key keeps its public half forever, so that what it
-- signed can still be checked, and loses its secret. id is the first 16 hex of
-- sha256(public key).
-- (postgresql twin of ../sqlite/0011_signing_keys.sql)
create table signing_keys (
    id          text collate "C" primary key check (length(id) = 16),
    algorithm   text not null check (algorithm = 'ed25519'),
    public_key  bytea not null unique check (length(public_key) = 32),
    -- the 32-byte seed of a key the service generated; null for a key supplied by a
    -- key file (its secret never enters the database) and for retired keys
    secret_key  bytea check (secret_key is null or length(secret_key) = 32),
    source      text not null check (source in ('generated', 'file')),
    created_at  timestamptz not null,
    retired_at  timestamptz,
    check (retired_at is null or secret_key is null)
);

-- one current key per algorithm, even with several instances starting at once
create unique index signing_keys_current on signing_keys (algorithm) where retired_at is null;

create trigger signing_keys_no_delete before delete on signing_keys
for each row execute function tirage_refuse('signing keys are kept for verification');

create trigger signing_keys_keep_public before update on signing_keys
for each row when (new.id is distinct from old.id
    or new.public_key is distinct from old.public_key
    or new.created_at is distinct from old.created_at
    or (old.retired_at is not null and new.retired_at is distinct from old.retired_at))
execute function tirage_refuse('a signing key keeps its id, public key and dates');
