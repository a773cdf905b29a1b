-- signing_keys: the ed25519 keys the service signs attestations with. the current key
-- is the one not retired; a retired key keeps its public half forever, so that what it
-- signed can still be checked, and loses its secret. id is the first 16 hex of
-- sha256(public key).
create table signing_keys (
    id          text primary key check (length(id) = 16),
    algorithm   text not null check (algorithm = 'ed25519'),
    public_key  blob not null unique check (length(public_key) = 32),
    -- the 32-byte seed of a key the service generated; null for a key supplied by a
    -- key file (its secret never enters the database) and for retired keys
    secret_key  blob check (secret_key is null or length(secret_key) = 32),
    source      text not null check (source in ('generated', 'file')),
    created_at  text not null,
    retired_at  text,
    check (retired_at is null or secret_key is null)
);

-- one current key per algorithm, even with several instances starting at once
create unique index signing_keys_current on signing_keys (algorithm) where retired_at is null;

create trigger signing_keys_no_delete before delete on signing_keys
begin
    select raise(abort, 'signing keys are kept for verification');
end;

create trigger signing_keys_keep_public before update on signing_keys
when new.id is not old.id
    or new.public_key is not old.public_key
    or new.created_at is not old.created_at
    or (old.retired_at is not null and new.retired_at is not old.retired_at)
begin
    select raise(abort, 'a signing key keeps its id, public key and dates');
end;
